"""Breach lead: how long before a developing failure reaches its limit the forecaster announces it,
against the rule an SRE writes today, `predict_linear(x[1h], 4*3600) > limit`.

    python bench/breach_lead.py [--nab ../shared/data/nab] [--smd ../shared/data/smd] [--out docs]

Into the judged part of every series of the three corpora (bench/forecast_corpora.py: NAB, the
replay fleet, SMD, all at 5-minute steps), failures that develop are injected, one of each shape
per series, each from a random moment, reaching the series' limit after 1 to 12 hours:
- leak: a steady ramp;
- noisy leak: the same with noise a tenth of its rise;
- stepwise: a disk filling in jumps every 30 minutes;
- accelerating: a connection pool draining ever faster (the rise grows as time^1.5).
A series' limit is what it never reached while learning: its highest learned value plus a quarter
of its learned range (1st to 99th percentile).

Every 5-minute cycle from the injection's start, both detectors are asked whether the limit will be
reached within 4 hours:
- the CfC (as shipped, with seasons of a day and a week, and without: bench/forecast_corpora.py): the
  forecast's probability of reaching the limit within its horizons (15 min to 4 h) is at least p
  (p = 0.5 is what the exporter exports and the shipped alerts read; other p trace its curve): the
  model's own forecast, its bands calibrated by the series' own outcomes as the exporter's are
  (aura_exporter/forecast/tailoring.py), from 2 days before the judged part;
- predict_linear: the least-squares line through the last hour (12 points), at the current time
  plus a look-ahead (4 h is the rule above; others trace its curve), is at or above the limit.
The lead is the limit's time minus the first announcement's. False announcements: on the same
series without injection, announcements (a rise of the announcing state) at moments the series
itself does not reach the limit within 4 hours, per entity-week.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_corpora import (  # noqa: E402
    CALIBRATION_LEAD,
    HORIZONS,
    REPO,
    STEP,
    VARIANTS,
    WEEK,
    Series,
    cfc_forecasts,
    exported_forecasts,
    nab_series,
    replace_section,
    replay_series,
    smd_series,
    trained_model,
    univariate,
)

from aura_exporter.forecast.breach import exceedance_probability  # noqa: E402
from aura_exporter.forecast.manager import sample_shape  # noqa: E402
from aura_exporter.forecast.tailoring import Tailoring  # noqa: E402

HOUR = 3600.0
SHAPES = ("leak", "noisy leak", "stepwise", "accelerating")
REACH_HOURS = (1, 2, 3, 4, 6, 8, 12)  # from the injection's start to the limit
LOOK = int(4 * HOUR / STEP)  # the question asked: the limit within 4 hours
LINE_POINTS = int(HOUR / STEP)  # x[1h] at 5-minute steps
PROBABILITIES = (0.3, 0.5, 0.7, 0.9)
LOOK_AHEADS = (1.0, 2.0, 4.0, 8.0)  # hours, for predict_linear
LONG = 3.0  # hours: ramps longer than this are the goal's (announced >= 2 h before)


@dataclass(frozen=True)
class Injection:
    shape: str
    start: int  # step the ramp starts at
    breach: int  # first step at or above the limit (may differ from start + reach: the series moves too)


@dataclass(frozen=True)
class Case:
    """A failure injected into a series: the values with it."""

    shape: str
    values: np.ndarray
    start: int
    breach: int


def limit_of(series: Series) -> float:
    learned = series.values[: series.split]
    low, high = np.nanpercentile(learned, [1, 99])
    return float(np.nanmax(learned) + 0.25 * max(high - low, 1e-9))


def ramp(shape: str, steps: int, length: int, rise: float, rng: np.random.Generator) -> np.ndarray:
    """[length] what the failure adds, reaching `rise` after `steps` steps and going on."""
    u = np.arange(1, length + 1) / steps
    if shape == "accelerating":
        return rise * u**1.5
    if shape == "stepwise":
        jumps = max(1, int(round(steps * STEP / (30 * 60))))
        return rise * np.ceil(u * jumps) / jumps
    added = rise * u
    if shape == "noisy leak":
        added += rng.normal(0, 0.1 * rise, length)
    return added


def inject(series: Series, shape: str, reach: float, rng: np.random.Generator) -> tuple[np.ndarray, int, int] | None:
    """(values with the failure, its start, its breach step), or None where the judged part is too short."""
    steps = int(reach * HOUR / STEP)
    first, last = series.split + LINE_POINTS + 48, len(series.values) - steps - 12
    if last <= first:
        return None
    start = int(rng.integers(first, last))
    limit = limit_of(series)
    before = series.values[start - 12 : start]
    level = np.nanmedian(before) if not np.isnan(before).all() else np.nan
    if not level < limit:  # nothing known, or already past the limit
        return None
    values = series.values.copy()
    length = min(int(steps * 1.2), len(values) - start)  # on past the limit, as a failure goes
    values[start : start + length] += ramp(shape, steps, length, limit - level, rng)
    above = np.flatnonzero(values[start:] >= limit)
    if not len(above):
        return None
    return values, start, start + int(above[0])


def cfc_answers(analysis, trained, series: Series, limit: float, ends: np.ndarray, cases: list[Case]
                ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Whether the forecast reaches `limit` with probability p or more (PROBABILITIES): [p, O] at `ends` of the
    series as it is, and [p, steps] from each case's start to its breach. Its bands are calibrated as the
    exporter's are (a cycle every step from CALIBRATION_LEAD before the judged part), each failure's run going
    on from the calibration the series had reached at its start."""
    shape = sample_shape(analysis)
    stream = np.arange(max(shape.span, series.split - CALIBRATION_LEAD), ends[-1] + 1)
    raw = cfc_forecasts(trained, shape, series, stream)
    starts = sorted({case.start for case in cases})
    tailoring, reached, model = Tailoring(analysis), {}, np.empty((len(stream), len(HORIZONS), 3))
    for part, start in zip(np.split(np.arange(len(stream)), np.searchsorted(stream, starts)), [None, *starts],
                           strict=True):
        if start is not None:
            reached[start] = copy.deepcopy(tailoring)
        model[part] = exported_forecasts(analysis, raw[part], series.values, stream[part], tailoring)[1]

    def announcing(quantiles: np.ndarray) -> np.ndarray:
        probability = exceedance_probability(quantiles[:, None], np.array([limit]))[:, 0]
        return probability[None, :] >= np.array(PROBABILITIES)[:, None]

    injected = []
    for case in cases:
        asked = np.arange(case.start, case.breach + 1)
        failing = Series(series.name, series.timestamps, case.values, series.split)
        _, quantiles = exported_forecasts(analysis, cfc_forecasts(trained, shape, failing, asked), case.values, asked,
                                          copy.deepcopy(reached[case.start]))
        injected.append(announcing(quantiles))
    return announcing(model[np.searchsorted(stream, ends)]), injected


def linear_answers(series: Series, limit: float, ends: np.ndarray, cases: list[Case]
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    """predict_linear's at each look-ahead (LOOK_AHEADS), as cfc_answers."""
    def announcing(values: np.ndarray, asked: np.ndarray) -> np.ndarray:
        return np.stack([linear_at(values, asked, ahead * HOUR) >= limit for ahead in LOOK_AHEADS])

    return announcing(series.values, ends), [announcing(c.values, np.arange(c.start, c.breach + 1)) for c in cases]


def linear_at(values: np.ndarray, ends: np.ndarray, ahead: float) -> np.ndarray:
    """[O] predict_linear(x[1h], ahead): the least-squares line of the last hour's points at now + ahead."""
    index = ends[:, None] - np.arange(LINE_POINTS - 1, -1, -1)[None, :]
    y = values[index]
    t = (np.arange(LINE_POINTS) - (LINE_POINTS - 1)) * STEP  # seconds, 0 at now
    t_mean = t.mean()
    slope = ((t - t_mean) * (y - y.mean(axis=1, keepdims=True))).sum(axis=1) / ((t - t_mean) ** 2).sum()
    at_now = y.mean(axis=1) + slope * (0.0 - t_mean)
    return at_now + slope * ahead


def reaches_within(values: np.ndarray, ends: np.ndarray, limit: float) -> np.ndarray:
    """[O] whether the values after each of `ends` reach `limit` within LOOK steps (the data's own breaches)."""
    above = np.concatenate([np.nan_to_num(values, nan=-np.inf) >= limit, np.zeros(LOOK, dtype=bool)])
    ahead = np.lib.stride_tricks.sliding_window_view(above[1:], LOOK)  # row i: steps i + 1 .. i + LOOK
    return ahead[ends].any(axis=1)


def rises(announcing: np.ndarray, counted: np.ndarray) -> int:
    """Announcements: steps where the state turns on, counted where `counted`."""
    turned_on = announcing & ~np.concatenate([[False], announcing[:-1]])
    return int((turned_on & counted).sum())


@dataclass
class Corpus:
    injections: list[Injection]
    first: dict[tuple[str, float], np.ndarray]  # (detector, setting) -> [injections] first announcing step (NaN: never)
    false: dict[tuple[str, float], int]  # (detector, setting) -> false announcements
    weeks: float  # entity-weeks judged for false announcements


def run_corpus(models: dict, series: list[Series], rng: np.random.Generator) -> Corpus:
    """`models` maps each CfC variant to its (analysis, trained model)."""
    shape = sample_shape(next(iter(models.values()))[0])
    injections: list[Injection] = []
    first: dict[tuple[str, float], list[float]] = {}
    false: dict[tuple[str, float], int] = {}
    weeks = 0.0
    settings = {**{variant: PROBABILITIES for variant in models}, "predict_linear": LOOK_AHEADS}
    for number, s in enumerate(series):
        limit = limit_of(s)
        ends = np.arange(max(s.split, shape.span, LINE_POINTS), len(s.values))
        ends = ends[~np.isnan(s.values[shape.context_index(ends)]).any(axis=1)]
        if len(ends) < 2 * LOOK:
            continue
        cases = [Case(failure, *made) for k, failure in enumerate(SHAPES)
                 if (made := inject(s, failure, REACH_HOURS[(number + k) % len(REACH_HOURS)], rng)) is not None]
        answers = {variant: cfc_answers(analysis, trained, s, limit, ends, cases)
                   for variant, (analysis, trained) in models.items()}
        answers["predict_linear"] = linear_answers(s, limit, ends, cases)
        # false announcements on the series as it is, where it does not reach the limit within 4 hours itself
        quiet = ~reaches_within(s.values, ends, limit)
        weeks += len(ends) / WEEK
        for name, (clean, injected) in answers.items():
            for k, setting in enumerate(settings[name]):
                false[name, setting] = false.get((name, setting), 0) + rises(clean[k], quiet)
                first.setdefault((name, setting), []).extend(
                    first_step(np.arange(case.start, case.breach + 1), announcing[k])
                    for case, announcing in zip(cases, injected, strict=True))
        injections += [Injection(case.shape, case.start, case.breach) for case in cases]
    return Corpus(injections, {key: np.array(v, float) for key, v in first.items()}, false, weeks)


def first_step(asked: np.ndarray, announcing: np.ndarray) -> float:
    return float(asked[np.argmax(announcing)]) if announcing.any() else np.nan


def leads_hours(corpus: Corpus, first: np.ndarray) -> np.ndarray:
    breach = np.array([i.breach for i in corpus.injections], float)
    return (breach - first) * STEP / HOUR  # NaN: never announced


def long_ramps(corpus: Corpus) -> np.ndarray:
    return np.array([(i.breach - i.start) * STEP / HOUR > LONG for i in corpus.injections])


def row(name: str, corpus: Corpus, first: np.ndarray, false: int) -> str:
    lead = leads_hours(corpus, first)
    long = long_ramps(corpus)
    early = np.mean(np.nan_to_num(lead[long], nan=-1.0) >= 2.0) if long.any() else float("nan")
    announced = np.isfinite(lead)
    return (f"| {name} | {early:.0%} of {long.sum()} | {np.mean(announced):.0%} | "
            f"{np.nanmedian(lead) if announced.any() else float('nan'):.1f} h | {false / corpus.weeks:.2f} |")


def table(corpus: Corpus) -> list[str]:
    lines = ["| detector | ramps over 3 h announced >= 2 h before | ramps announced before the limit | "
             "median lead | false announcements per entity-week |", "|---|---|---|---|---|"]
    for (name, setting), first in corpus.first.items():
        if name == "predict_linear":
            label = f"predict_linear(x[1h], {setting:g}h)" + (" (the usual rule)" if setting == 4.0 else "")
        else:
            label = f"{name}, p >= {setting:g}" + (" (exported)" if setting == 0.5 else "")
        lines.append(row(label, corpus, first, corpus.false[name, setting]))
    return lines


def early_share(corpus: Corpus, first: np.ndarray, chosen: np.ndarray) -> float:
    """Of the `chosen` injections, the share announced 2 h or more before their limit."""
    return float(np.mean(np.nan_to_num(leads_hours(corpus, first)[chosen], nan=-1.0) >= 2.0)) if chosen.any() \
        else float("nan")


def by_shape(corpus: Corpus) -> list[str]:
    shown = [key for key in corpus.first if key[1] in (0.5, 4.0)]  # as exported, and the usual rule
    names = [f"{name} (p >= 0.5)" if name != "predict_linear" else "predict_linear 4 h" for name, _ in shown]
    lines = ["| failure | ramps over 3 h | " + " | ".join(f"{n}: announced >= 2 h before" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    long = long_ramps(corpus)
    for failure in SHAPES:
        mine = long & np.array([i.shape == failure for i in corpus.injections])
        lines.append(f"| {failure} | {mine.sum()} | "
                     + " | ".join(f"{early_share(corpus, corpus.first[key], mine):.0%}" for key in shown) + " |")
    return lines


def plot(out: Path, corpora: dict[str, Corpus]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(corpora), figsize=(5 * len(corpora), 4), squeeze=False)
    for axis, (title, corpus) in zip(axes[0], corpora.items(), strict=True):
        long = long_ramps(corpus)
        for name in dict.fromkeys(name for name, _ in corpus.first):
            keys = [key for key in corpus.first if key[0] == name]
            x = [corpus.false[key] / corpus.weeks for key in keys]
            y = [early_share(corpus, corpus.first[key], long) for key in keys]
            axis.plot(x, y, marker="o", label=name + (" (look-ahead, h)" if name == "predict_linear" else " (p)"))
            for (_, setting), xi, yi in zip(keys, x, y, strict=True):
                axis.annotate(f"{setting:g}", (xi, yi), fontsize=7, textcoords="offset points", xytext=(3, 3))
        axis.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
        axis.set_xscale("symlog", linthresh=0.1)
        axis.set_xlim(left=0.0)  # no negative counts on the axis
        axis.set_xlabel("false announcements per entity-week")
        axis.set_ylabel("ramps over 3 h announced >= 2 h before")
        axis.set_ylim(0, 1)
        axis.set_title(title)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = out / "img" / "breach-lead.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return str(path.relative_to(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nab", type=Path, default=REPO.parent / "shared" / "data" / "nab")
    parser.add_argument("--smd", type=Path, default=REPO.parent / "shared" / "data" / "smd")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--train-time", type=float, default=240.0, help="seconds of training per corpus")
    args = parser.parse_args()
    started = time.time()
    corpora = {"NAB": nab_series(args.nab)[0], "Replay fleet": replay_series(), "SMD": smd_series(args.smd)}
    results = {}
    for title, series in corpora.items():
        models = {}
        for variant, seasons in VARIANTS.items():
            analysis = univariate(args.train_time, seasons)
            models[variant] = (analysis, trained_model(title, analysis, series)[0])
        print(f"{title}: injecting into {len(series)} series", file=sys.stderr)
        results[title] = run_corpus(models, series, np.random.default_rng(0))
        print("\n".join(table(results[title])), file=sys.stderr)
    image = plot(args.out, results)
    lines = ["## Breach lead", "",
             f"Made by `make breach-lead` (`python bench/breach_lead.py`) on {time.strftime('%Y-%m-%d')}, CPU only, "
             f"in {time.time() - started:.0f} s, with the models of the tables above. Into each series' judged part, "
             "four failures that develop (a leak, a noisy leak, a disk filling in steps, a pool draining ever faster) "
             "reach the series' limit (its highest learned value plus a quarter of its learned range) 1 to 12 hours "
             "after they start. Every 5 minutes from their start, each detector says whether the limit will be reached "
             "within 4 hours (the CfC: with p or more, the model's own forecast, its bands calibrated by the series' "
             "own outcomes as the exporter's are, from 2 days before the judged part). "
             "Lead: the limit's time minus the first announcement's. False announcements: the same series without "
             "injection, where they do not reach the limit themselves within 4 hours.", "",
             f"![share of long ramps announced 2 h ahead against false announcements]({image})", ""]
    for title, corpus in results.items():
        lines += [f"### {title}: {len(corpus.injections)} failures, {corpus.weeks:.0f} entity-weeks without", "",
                  *table(corpus), "", *by_shape(corpus), ""]
    replace_section(args.out / "forecast-quality.md", "breach-lead", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
