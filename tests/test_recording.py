"""Evidence recorded once, the decision layer replayed over it (backtest/recording.py)."""

from __future__ import annotations

import json

import numpy as np
from test_backtest import CONFIG, wavy, write_series

from aura_exporter.cli import main

# Novelty on, so that a recording carries every kind of per-feature evidence the NAB analysis weighs.
RECORDED = CONFIG.replace("    baseline: {min_history: 3}",
                          "    baseline: {min_history: 3}\n    topology: {embedding_dimension: 2, novelty_history: 100}")


def backtest(tmp_path, name: str, config_text: str, *args: str) -> dict:
    config = tmp_path / f"{name}.yml"
    config.write_text(config_text)
    out = tmp_path / name
    assert main(["backtest", f"--config.file={config}", f"--output.dir={out}", *args]) == 0
    return {"scores": (out / "scores.csv").read_text(), "alerts": json.loads((out / "alerts.json").read_text()),
            "out": out}


def series(tmp_path) -> str:
    data = tmp_path / "data"
    for name, seed, spike in (("calm", 1, None), ("spiky", 3, 450), ("late", 4, 520)):
        write_series(data / f"{name}.csv", *wavy(600, seed, spike_at=spike))
    return str(data)


def test_deciding_again_over_the_recording_equals_a_full_replay(tmp_path):
    data = series(tmp_path)
    recorded = backtest(tmp_path, "recorded", RECORDED, f"--data.path={data}", "--record.evidence")
    evidence = recorded["out"] / "evidence.npz"
    assert evidence.exists()
    again = backtest(tmp_path, "again", RECORDED, f"--evidence.file={evidence}")
    assert again["scores"] == recorded["scores"] and again["alerts"] == recorded["alerts"]
    # other council settings: the recording decides as a full replay with those settings would
    stricter = RECORDED.replace("    baseline: {min_history: 3}",
                                "    baseline: {min_history: 3}\n    council: {sigmas: 3.5, confirm_cycles: 1, "
                                "evidence: [novelty, drift]}")
    full = backtest(tmp_path, "full", stricter, f"--data.path={data}")
    redecided = backtest(tmp_path, "redecided", stricter, f"--evidence.file={evidence}")
    assert redecided["scores"] == full["scores"] and redecided["alerts"] == full["alerts"]
    assert full["scores"] != recorded["scores"]  # the settings did change the decisions: the test can tell
    assert len(full["alerts"]["alerts"]) > 0


def test_a_recording_that_cannot_be_used_is_a_clear_error(tmp_path, capsys):
    data = series(tmp_path)
    recorded = backtest(tmp_path, "recorded", RECORDED, f"--data.path={data}", "--record.evidence")
    config = tmp_path / "other.yml"
    config.write_text(RECORDED.replace("value: {query: 'value', role: performance}",
                                       "other: {query: 'other', role: performance}"))
    out = tmp_path / "x"
    assert main(["backtest", f"--config.file={config}", f"--evidence.file={recorded['out'] / 'evidence.npz'}",
                 f"--output.dir={out}"]) == 1
    assert "recorded for other features" in capsys.readouterr().err
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not a recording")
    config.write_text(RECORDED)
    assert main(["backtest", f"--config.file={config}", f"--evidence.file={broken}", f"--output.dir={out}"]) == 1
    assert "cannot read the evidence recording" in capsys.readouterr().err
    assert not np.any([p.name == "scores.csv" for p in out.glob("*")]) if out.exists() else True
