"""Backtests: files in, the live cycle replayed with no look-ahead, scores, alerts and a report out."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import json
import math

import numpy as np
import pytest

from aura_exporter.backtest.files import (
    InputError,
    files_history,
    find_entities,
    learning_rows,
    parse_time,
    read_series,
)
from aura_exporter.backtest.replay import EntityTrace, Trace, alerts, replay
from aura_exporter.cli import main
from aura_exporter.config import parse_config
from aura_exporter.history import History

CONFIG = """
prometheus: {url: 'http://unused.invalid:9090'}
analyses:
  - name: files
    entity_labels: [series]
    step: 5m
    window: 2h
    interval: 5m
    features:
      value: {query: 'value', role: performance}
    forecast: {enabled: false, input_steps: 24}
    baseline: {min_history: 3}
"""
ANALYSIS = parse_config(CONFIG).analyses[0]
START = 1_400_000_000.0  # 2014-05-13, a NAB-era date


def write_series(path, times, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "value"])
        for t, v in zip(times, values, strict=True):
            out.writerow([f"{np.datetime64(int(t), 's').astype(object):%Y-%m-%d %H:%M:%S}", f"{v:.4f}"])


def wavy(rows: int, seed: int, spike_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = START + 300.0 * np.arange(rows)
    values = 50 + 10 * np.sin(np.arange(rows) * 2 * math.pi / 288) + rng.normal(0, 1, rows)
    if spike_at is not None:
        values[spike_at:spike_at + 24] += np.linspace(0, 60, 24)
    return times, values


def test_a_decision_is_shown_until_the_next_cycle_replaces_it():
    trace = Trace(ANALYSIS, ("performance",))  # 5-minute cycles
    entity = trace.entities[("a",)] = EntityTrace()
    entity.times = [0.0, 300.0, 600.0, 900.0]
    entity.decision = [0, 1, 0, 0]  # one cycle at warn: shown from 300 s to 600 s
    entity.ready = [True] * 4
    assert [(a.start, a.end) for a in alerts(trace, 60.0)] == [(360.0, 600.0)]  # `for: 1m` fires
    assert alerts(trace, 300.0) == []  # `for: 5m` needs it shown for longer than five minutes
    entity.decision = [0, 0, 0, 1]  # at the end: shown for an interval
    assert [(a.start, a.end) for a in alerts(trace, 60.0)] == [(960.0, None)]


def test_scores_at_t_do_not_change_when_the_data_after_t_is_removed():
    rows, cut = 400, 300
    history = History(tuple((f"s{i}",) for i in range(3)), wavy(rows, 0)[0],
                      np.stack([wavy(rows, i, spike_at=280 + 10 * i)[1] for i in range(3)])[:, :, None])
    truncated = dataclasses.replace(history, timestamps=history.timestamps[:cut], values=history.values[:, :cut])
    start, cut_time = float(history.timestamps[0]) + ANALYSIS.window, float(history.timestamps[cut - 1])
    full = asyncio.run(replay(ANALYSIS, history, start, float(history.timestamps[-1])))
    early = asyncio.run(replay(ANALYSIS, truncated, start, cut_time))
    for key, seen in early.entities.items():
        whole = full.entities[key]
        n = len(seen.times)
        assert n > 100 and whole.times[:n] == seen.times and whole.times[n] > cut_time
        np.testing.assert_array_equal(whole.risk[:n], seen.risk)
        np.testing.assert_array_equal(whole.drift_zscore[:n], seen.drift_zscore)
        assert whole.decision[:n] == seen.decision
    # ...and the data after the cut did change what came later: the test can tell
    assert any(max(e.risk[len(early.entities[k].times):]) > max(early.entities[k].risk) for k, e in full.entities.items())


def test_csv_problems_are_named_with_file_and_line(tmp_path):
    bad_header = tmp_path / "a.csv"
    bad_header.write_text("time,val\n2014-01-01 00:00:00,1\n")
    bad_row = tmp_path / "b.csv"
    bad_row.write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,lots\n")
    backwards = tmp_path / "c.csv"
    backwards.write_text("timestamp,value\n2014-01-01 05:00:00,1\n2014-01-01 00:05:00,2\n")
    with pytest.raises(InputError, match="header"):
        read_series(bad_header)
    with pytest.raises(InputError, match=r"b.csv:3"):
        read_series(bad_row)
    with pytest.raises(InputError, match="backwards"):
        read_series(backwards)
    with pytest.raises(InputError, match="no such file"):
        find_entities(tmp_path / "nothing", ANALYSIS)


def test_a_daylight_saving_step_back_is_laid_forward_and_rows_keep_their_own_time(tmp_path):
    path = tmp_path / "dst.csv"
    path.write_text("timestamp,value\n2014-11-02 01:50:00,1\n2014-11-02 01:55:00,2\n2014-11-02 01:00:00,3\n"
                    "2014-11-02 01:05:00,4\n")
    series = read_series(path)
    assert np.all(np.diff(series.timeline) == 300.0)
    assert series.timestamps[2] == parse_time("2014-11-02 01:00:00")  # outputs carry the file's own times


def test_a_step_back_that_is_no_clock_change_moves_nothing_an_hour(tmp_path):
    # NAB's machine_temperature steps 55 minutes back once: the rows after it keep their own times, and
    # the replay lays them after the rows before them (one usual step on), not an hour later
    times = START + 300.0 * np.arange(60)
    times[30:] -= 55 * 60 + 300
    path = tmp_path / "back.csv"
    write_series(path, times, np.arange(60.0))
    series = read_series(path)
    np.testing.assert_array_equal(series.timestamps, times)
    assert np.all(np.diff(series.timeline) == 300.0)


def write_wide(path, times, columns: dict, split_at: int | None = None, gz: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["timestamp", *columns] + (["split", "label"] if split_at is not None else [])
    lines = [",".join(header)]
    for i, t in enumerate(times):
        cells = [f"{np.datetime64(int(t), 's').astype(object):%Y-%m-%dT%H:%M:%SZ}",
                 *("" if np.isnan(c[i]) else f"{c[i]:.4f}" for c in columns.values())]
        if split_at is not None:
            cells += ["train" if i < split_at else "test", "1"]
        lines.append(",".join(cells))
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)


WIDE = parse_config(CONFIG.replace("value: {query: 'value', role: performance}",
                                   "cpu: {query: 'cpu', role: resources}\n      mem: {query: 'mem', role: resources}"
                                   )).analyses[0]


def test_wide_files_one_per_entity_plain_or_gzip(tmp_path):
    times, cpu = wavy(50, 1)
    mem = cpu * 2
    mem[7] = np.nan
    write_wide(tmp_path / "a.csv.gz", times, {"cpu": cpu, "mem": mem, "other": cpu}, split_at=20, gz=True)
    write_wide(tmp_path / "dc" / "b.csv", times, {"mem": mem})
    found = find_entities(tmp_path, WIDE)
    assert set(found) == {"a", "dc/b"} and set(found["a"]) == {"cpu", "mem"} and set(found["dc/b"]) == {"mem"}
    np.testing.assert_allclose(found["a"]["cpu"].values, np.round(cpu, 4))
    assert np.isnan(found["a"]["mem"].values[7]) and found["a"]["mem"].values[8] == pytest.approx(mem[8], abs=1e-4)
    assert found["a"]["cpu"].learning.tolist() == [True] * 20 + [False] * 30  # the split column; labels unread
    assert found["dc/b"]["mem"].learning is None
    first = found["a"]["cpu"]
    assert learning_rows(first, None, 0.15).sum() == 20
    assert learning_rows(first, float(times[10]), 0.15).sum() == 10  # --learn.until wins over the column
    assert learning_rows(found["dc/b"]["mem"], None, 0.15).sum() == 7  # neither: the first 15%


def test_bad_wide_files_are_named_with_file_and_line(tmp_path):
    times, cpu = wavy(5, 1)
    write_wide(tmp_path / "a.csv", times, {"cpu": cpu})
    lines = (tmp_path / "a.csv").read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",lots"
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"a.csv:4: not a row of `timestamp,cpu`"):
        find_entities(tmp_path, WIDE)
    (tmp_path / "a.csv").write_text("timestamp,disk\n2026-01-01T00:00:00Z,1\n")
    with pytest.raises(InputError, match=r"a.csv: no column for any feature \(cpu, mem\)"):
        find_entities(tmp_path, WIDE)
    (tmp_path / "a.csv").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "a.csv").rename(tmp_path / "a.csv.gz")
    with pytest.raises(InputError, match=r"a.csv.gz: cannot read"):
        find_entities(tmp_path, WIDE)


def test_files_of_different_years_share_one_timeline_keeping_weekday_and_time_of_day(tmp_path):
    write_series(tmp_path / "old.csv", *wavy(50, 1))
    later = wavy(50, 2)
    write_series(tmp_path / "new.csv", later[0] + 400 * 86400.0 + 3600, later[1])
    placed = files_history(ANALYSIS, find_entities(tmp_path, ANALYSIS))
    assert placed.shifts[("old",)] == 0.0 and placed.shifts[("new",)] % (7 * 86400.0) == 0.0
    assert len(placed.history.timestamps) <= 7 * 288 + 50 + 12  # within a week of each other, not 400 days


def test_backtest_and_evaluate_on_files(tmp_path, capsys):
    config = tmp_path / "aura.yml"
    config.write_text(CONFIG)
    data = tmp_path / "data" / "cat"
    hostile = "<img src=x onerror=alert(1)>"
    for name, seed in (("calm", 1), (hostile, 2), ("spiky", 3)):
        write_series(data / f"{name}.csv", *wavy(600, seed, spike_at=450 if name == "spiky" else None))
    labels = tmp_path / "labels.json"
    spike = np.datetime64(int(START + 300 * 440), "s").astype(object)
    spike_end = np.datetime64(int(START + 300 * 480), "s").astype(object)
    labels.write_text(json.dumps({"cat/spiky.csv": [[f"{spike:%Y-%m-%d %H:%M:%S}.000000",
                                                     f"{spike_end:%Y-%m-%d %H:%M:%S}.000000"]]}))
    out = tmp_path / "out"
    assert main(["backtest", f"--config.file={config}", f"--data.path={tmp_path / 'data'}", f"--labels.file={labels}",
                 f"--output.dir={out}"]) == 0
    with open(out / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["series"] for r in rows} == {"cat/calm", f"cat/{hostile}", "cat/spiky"} and len(rows) == 1800
    spiky = [float(r["risk"]) for r in rows if r["series"] == "cat/spiky"]
    # the spike stands out from the calm rows since the usual state warmed up (200 cycles; before, levels are
    # judged against the window alone, and the budget is still learning: fixed thresholds)
    assert max(spiky[450:480]) > 2 * max(spiky[210:440])
    alerts = json.loads((out / "alerts.json").read_text())["alerts"]
    # one page per warning, at the first row at or after it starts firing (ISO times sort as times)
    warnings = {(a["entity"]["series"], min(r["time"] for r in rows if r["series"] == a["entity"]["series"]
                                            and r["time"] >= a["start"]))
                for a in alerts if a["severity"] == "warning"}
    paged = {(r["series"], r["time"]) for r in rows if float(r["alert_score"]) > 0}
    assert any(s == "cat/spiky" for s, _ in paged) and paged == warnings
    nab = sorted(p.relative_to(out / "results") for p in (out / "results").rglob("*.csv"))
    assert [str(p) for p in nab] == ["aura/cat/aura__img_src_x_onerror_alert_1__.csv", "aura/cat/aura_calm.csv",
                                     "aura/cat/aura_spiky.csv"]
    with open(out / "results" / "aura" / "cat" / "aura_spiky.csv") as handle:
        nab_rows = list(csv.DictReader(handle))
    assert list(nab_rows[0]) == ["timestamp", "value", "anomaly_score", "label"] and len(nab_rows) == 600
    assert sum(int(r["label"]) for r in nab_rows) == 41
    assert [float(r["anomaly_score"]) for r in nab_rows] == [float(r["alert_score"]) for r in rows
                                                           if r["series"] == "cat/spiky"]
    report = (out / "report.html").read_text()
    assert hostile not in report and "&lt;img src=x" in report and report.count("<svg") == 3
    capsys.readouterr()
    assert main(["evaluate", f"--backtest.dir={out}", f"--labels.file={labels}"]) == 0
    printed = capsys.readouterr().out
    assert "NAB score" in printed and "incident recall" in printed
    result = json.loads((out / "evaluation.json").read_text())
    assert set(result["nab"]) == {"standard", "reward_low_fp", "reward_low_fn"}
    assert result["windows"]["total"] == 1


def test_bad_backtest_input_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "aura.yml"
    config.write_text(CONFIG)
    assert main(["backtest", f"--config.file={config}", f"--data.path={tmp_path / 'missing'}",
                 f"--output.dir={tmp_path / 'out'}"]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["backtest", f"--config.file={config}", f"--output.dir={tmp_path / 'out'}"]) == 1
    assert "--history.from" in capsys.readouterr().err
    assert main(["evaluate", f"--backtest.dir={tmp_path}", f"--labels.file={config}"]) == 1
    assert "not a backtest" in capsys.readouterr().err


@pytest.mark.parametrize(("old", "new"), [("--from", "--history.from"), ("--data", "--data.path"),
                                          ("--labels", "--labels.file"), ("--evidence", "--evidence.file")])
def test_an_undotted_flag_of_old_is_refused_with_its_new_name(tmp_path, capsys, old, new):
    """argparse alone would take `--data` as an abbreviation of `--data.path`: the old spelling is named instead."""
    with pytest.raises(SystemExit) as exited:
        main(["backtest", f"--config.file={tmp_path / 'aura.yml'}", f"{old}=x"])
    assert exited.value.code == 2
    assert f"{old} is now {new}" in capsys.readouterr().err


def test_backtest_of_wide_files_learns_until_the_given_time_and_evaluates_event_wise(tmp_path, capsys):
    config = tmp_path / "aura.yml"
    config.write_text(CONFIG.replace("value: {query: 'value', role: performance}",
                                     "cpu: {query: 'cpu', role: resources}\n      mem: {query: 'mem', role: resources}"))
    times, cpu = wavy(600, 1)
    mem = wavy(600, 2)[1]
    broken = mem.copy()
    broken[450:480] += 80  # an incident on one machine, after learning
    write_wide(tmp_path / "data" / "calm.csv.gz", times, {"cpu": cpu, "mem": mem}, gz=True)
    write_wide(tmp_path / "data" / "broken.csv", times, {"cpu": cpu, "mem": broken})
    iso = [f"{np.datetime64(int(t), 's').astype(object):%Y-%m-%dT%H:%M:%SZ}" for t in times]
    labels = tmp_path / "incidents.yml"
    labels.write_text(f"incidents:\n  - entity: {{series: broken}}\n    start: {iso[450]}\n    end: {iso[479]}\n")
    out = tmp_path / "out"
    assert main(["backtest", f"--config.file={config}", f"--data.path={tmp_path / 'data'}", f"--learn.until={iso[300]}",
                 f"--output.dir={out}"]) == 0
    with open(out / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["time"] for r in rows if r["series"] == "broken"] == iso  # the files' own times
    assert sum(r["learning"] == "1" for r in rows) == 2 * 300
    usual = [r["usual_per_week"] for r in rows if r["series"] == "broken"]  # the default page budget's λ
    assert usual[0] == ""  # it learns at first (and these smooth series stay on the fixed thresholds)
    capsys.readouterr()
    assert main(["evaluate", f"--backtest.dir={out}", f"--labels.file={labels}"]) == 0
    assert "event-wise" in capsys.readouterr().out
    events = json.loads((out / "evaluation.json").read_text())["events"]
    assert events["pages"]["incidents"] == 1 and events["pages"]["caught"] == 1
    assert set(events["recall_at_budget"]) == {"0.1", "0.25", "1.0"} and events["curve"]
    assert main(["backtest", f"--config.file={config}", "--history.from=2026-01-01T00:00:00Z", "--learn.until=2026-01-02",
                 f"--output.dir={out}"]) == 1
    assert "--learn.until is for --data.path" in capsys.readouterr().err
