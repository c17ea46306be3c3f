"""Forecast quality: the CfC forecaster against the statistical anchors, on three corpora, in one run.

    python bench/forecast_quality.py [--nab ../shared/data/nab] [--smd ../shared/data/smd] [--out docs]
                                     [--train-time 240] [--quick]

Every corpus at 5-minute steps, each series split in time (the model never sees the judged part):
- NAB: every series sampled every 5 minutes (47 of 58), trained on its first 60%;
- the replay fleet: 20 hosts x 5 features, 10 days to learn from, 2 days judged;
- SMD: 8 real servers x 38 metrics, 1-minute rows averaged to 5 minutes, its train rows to learn
  from, its test rows judged (metrics that never move are left out).

At forecast origins spread over each judged part, every method forecasts 15 min, 1 h, 2 h and 4 h
ahead from what is known at the origin:
- CfC: one model per corpus (aura_exporter.forecast) as shipped (`forecast.seasons` of a day and a
  week), and "CfC, no seasons", the same with `forecast.seasons: []`; each as the exporter exports it, its
  median combined per series with simple forecasts by their errors on the series so far
  (aura_exporter/forecast/combination.py), and the shipped one's model alone;
- seasonal naive: the value one day before the target time;
- last value;
- AutoETS (statsforecast; non-seasonal: ETS refuses a 288-step season), fitted once on the
  learning part, then run forward over what is known at each origin;
- MSTL (statsforecast; a daily season, AutoETS on the trend), fitted on the last 4 days before
  each origin. Its weekly season costs 9 s per forecast at 5-minute steps (STL over 2016-step
  seasons): `--weekly-mstl` adds it, on corpora with two weeks before their origins.

Reported per horizon: MASE relative to seasonal naive (each series' mean absolute error over the
seasonal naive's on the same origins), as a geometric mean over series; the share of series on which
each CfC variant's error is below each statistical anchor's; and their calibration, the share of
outcomes inside the 10-90% band (80% is exact). Writes a section of docs/forecast-quality.md and a plot.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_corpora import (  # noqa: E402
    CALIBRATION_LEAD,
    DAY,
    HORIZONS,
    REPO,
    SEASON,
    STEP,
    VARIANTS,
    WEEK,
    Series,
    calibration_stream,
    cfc_forecasts,
    exported_forecasts,
    horizon_columns,
    nab_series,
    replace_section,
    replay_series,
    smd_series,
    trained_model,
    univariate,
)

from aura_exporter.config import Analysis  # noqa: E402
from aura_exporter.forecast.manager import sample_shape  # noqa: E402
from aura_exporter.forecast.stage import TrainedModel  # noqa: E402

MSTL_HISTORY = 4 * SEASON  # steps before each origin MSTL decomposes
ORIGINS = 36  # forecast origins per series (--origins): with 12, moving each by 10 minutes moved NAB's 4 h MASE by 0.4
ANCHORS = ("seasonal naive", "last value", "AutoETS", "MSTL (day)")
SHIPPED = "CfC"
MODEL_ALONE = "CfC's model alone"  # its median before each series' combination (aura_exporter/forecast/combination.py)
# Steps between the forecasts that calibrate each series' bands, as an exporter's cycles would: every 15 minutes
# (5-minute cycles cost three times the forecasts and only judge the 15-minute horizon more often).
CALL = 3


@dataclass
class Judged:
    """Per series [S], origin [O] and horizon [H]: absolute errors of each method, and the CfC's band hits."""

    names: list[str]
    errors: dict[str, np.ndarray]  # method -> [S, H] mean absolute error over the series' origins
    inside: dict[str, np.ndarray]  # CfC variant -> [S, H] share of outcomes inside its 10-90% band, as exported
    inside_model: dict[str, np.ndarray]  # CfC variant -> [S, H] the same for the model's own band (uncalibrated)


def origins(series: Series, count: int, span: int, reach: int) -> np.ndarray:
    """`count` forecast origins spread over the judged part, each with a full context, a day before it
    (seasonal naive) and every horizon's outcome in the data; CALL steps apart or a multiple of it."""
    first = max(series.split, span, SEASON)
    last = len(series.values) - 1 - reach
    if last - first < count * CALL:
        return np.zeros(0, dtype=int)
    return first + (np.linspace(first, last, count).astype(int) - first) // CALL * CALL


def statistical_forecasts(job: tuple[np.ndarray, int, np.ndarray, tuple[int, ...], bool]) -> dict[str, np.ndarray]:
    """Per anchor, [O, H] forecasts of one series at `ends` (run in a worker process)."""
    from statsforecast.models import MSTL, AutoETS

    values, split, ends, steps, weekly = job
    reach = max(steps)

    def each_origin(forecast, history: int) -> np.ndarray:
        """[O, reach] forecasts from the last `history` known values, NaN where they have gaps."""
        rows = []
        for end in ends:
            known = values[max(0, end + 1 - history) : end + 1]
            rows.append(np.full(reach, np.nan) if np.isnan(known).any() else forecast(known))
        return np.array(rows)

    learned = values[:split]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ets = AutoETS().fit(np.where(np.isnan(learned), np.nanmedian(learned), learned))
        out["AutoETS"] = each_origin(lambda known: ets.forward(y=known, h=reach)["mean"], 2 * WEEK)
        out["MSTL (day)"] = each_origin(lambda known: MSTL(season_length=[SEASON]).fit(known).predict(h=reach)["mean"],
                                        MSTL_HISTORY)
        if weekly:
            out["MSTL (day, week)"] = each_origin(
                lambda known: MSTL(season_length=[SEASON, WEEK]).fit(known).predict(h=reach)["mean"], 2 * WEEK)
    return {name: forecast[:, [s - 1 for s in steps]] for name, forecast in out.items()}


def judge(models: dict[str, tuple[Analysis, TrainedModel]], series: list[Series], count: int, weekly_mstl: bool,
          workers: int) -> Judged:
    """Every method's errors on `series`; `models` maps each CfC variant to its analysis and trained model."""
    shape = sample_shape(next(iter(models.values()))[0])  # the variants differ in seasons only
    steps = tuple(int(h / STEP) for h in HORIZONS)
    columns = horizon_columns(shape)
    reach = max(steps)
    kept, jobs, truths, model, uncalibrated, naive = [], [], [], [], [], []
    for s in series:
        ends = origins(s, count, max(shape.span, MSTL_HISTORY - 1), reach)
        ends = ends[~np.isnan(s.values[shape.context_index(ends)]).any(axis=1)] if len(ends) else ends
        if len(ends) < max(1, count // 2):
            continue
        targets = ends[:, None] + np.array(steps)[None, :]
        kept.append(s)
        truths.append(s.values[targets])
        raw, exported = {}, {}
        for variant, (analysis, trained) in models.items():
            stream = calibration_stream(s, sample_shape(analysis), ends, CALL)
            forecasts = cfc_forecasts(trained, sample_shape(analysis), s, stream)
            at = np.searchsorted(stream, ends)
            raw[variant] = forecasts[at][:, columns]
            exported[variant] = exported_forecasts(analysis, forecasts, s.values, stream)[0][at]
        model.append(exported)
        uncalibrated.append(raw)
        naive.append({"seasonal naive": s.values[targets - SEASON],
                      "last value": np.repeat(s.values[ends][:, None], len(steps), axis=1),
                      MODEL_ALONE: raw[SHIPPED][..., 1]})
        jobs.append((s.values, s.split, ends, steps, weekly_mstl and ends[0] >= 2 * WEEK))
    print(f"  statistical anchors for {len(jobs)} series", file=sys.stderr)
    with ProcessPoolExecutor(workers) as pool:
        statistical = list(pool.map(statistical_forecasts, jobs, chunksize=4))
    methods = [*models, MODEL_ALONE, *ANCHORS, *(["MSTL (day, week)"] if weekly_mstl else [])]
    errors = {m: np.full((len(kept), len(steps)), np.nan) for m in methods}
    inside = {variant: np.zeros((len(kept), len(steps))) for variant in models}
    inside_model = {variant: np.zeros((len(kept), len(steps))) for variant in models}
    for i, truth in enumerate(truths):
        guesses = {**{variant: q[..., 1] for variant, q in model[i].items()}, **naive[i], **statistical[i]}
        for method, guess in guesses.items():
            errors[method][i] = np.nanmean(np.abs(guess - truth), axis=0)
        for variant in models:
            inside[variant][i] = share_inside(model[i][variant], truth)
            inside_model[variant][i] = share_inside(uncalibrated[i][variant], truth)
    return Judged([s.name for s in kept], errors, inside, inside_model)


def share_inside(quantiles: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[H] the share of outcomes [O, H] inside the 10-90% bands of `quantiles` [O, H, 3]."""
    return np.nanmean((truth >= quantiles[..., 0]) & (truth <= quantiles[..., 2]), axis=0)


def relative(judged: Judged, method: str) -> np.ndarray:
    """[S, H] the method's error over seasonal naive's; NaN where seasonal naive was exact."""
    base = judged.errors["seasonal naive"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base > 0, judged.errors[method] / base, np.nan)


def geometric_mean(ratios: np.ndarray) -> np.ndarray:
    """[H] over the series with a finite, positive ratio."""
    ok = np.isfinite(ratios) & (ratios > 0)
    logs = np.where(ok, np.log(np.where(ok, ratios, 1.0)), 0.0)
    return np.exp(logs.sum(axis=0) / np.maximum(ok.sum(axis=0), 1))


def horizon_label(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def table(judged: Judged) -> list[str]:
    """MASE over seasonal naive's for every method; the share of series on which each CfC variant beats each
    statistical anchor; each variant's band coverage."""
    methods = [m for m in judged.errors if m != "seasonal naive"]
    variants = list(judged.inside)
    rivals = [m for m in methods if m not in variants and m != "last value"]
    lines = ["| horizon | " + " | ".join(methods) + " | "
             + " | ".join(f"{v} beats {a}" for v in variants for a in rivals) + " | "
             + " | ".join(f"{v}: 10-90% band holds (the model's own)" for v in variants) + " |",
             "|---" * (1 + len(methods) + len(variants) * (len(rivals) + 1)) + "|"]
    for k, h in enumerate(HORIZONS):
        means = [f"{geometric_mean(relative(judged, m))[k]:.2f}" for m in methods]
        beats = []
        for v in variants:
            for a in rivals:
                both = np.isfinite(judged.errors[a][:, k]) & np.isfinite(judged.errors[v][:, k])
                beats.append(f"{np.mean(judged.errors[v][both, k] < judged.errors[a][both, k]):.0%} of {both.sum()}")
        lines.append(f"| {horizon_label(h)} | " + " | ".join(means) + " | " + " | ".join(beats) + " | "
                     + " | ".join(f"{np.nanmean(judged.inside[v][:, k]):.0%} "
                                  f"({np.nanmean(judged.inside_model[v][:, k]):.0%})" for v in variants) + " |")
    held = "; ".join(f"{v} {well_calibrated(judged.inside[v]):.0%} (the model's own band: "
                     f"{well_calibrated(judged.inside_model[v]):.0%})" for v in variants)
    return [*lines, "", f"Series whose band holds 75-85% of their outcomes (the mean of the four horizons): {held}."]


def well_calibrated(inside: np.ndarray) -> float:
    """The share of series [S, H] whose band holds 75-85% of outcomes, over the horizons."""
    held = np.nanmean(inside, axis=1)
    return float(np.mean((held >= 0.75) & (held <= 0.85)))


def summary(report) -> str:
    return (f"{report.epochs} epochs, {report.samples} samples, {report.seconds:.0f} s, "
            f"stopped: {report.stopped_because}")


def plot(out: Path, corpora: dict[str, Judged], example: tuple[Series, np.ndarray, np.ndarray]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 1 + len(corpora), figsize=(6 + 5 * len(corpora), 4))
    series, target_index, quantiles = example
    hours = (series.timestamps - series.timestamps[series.split]) / 3600
    axes[0].plot(hours, series.values, color="black", linewidth=0.8, label="observed")
    axes[0].plot(hours[target_index], quantiles[:, 1], color="tab:blue", label="2 h ahead, median")
    axes[0].fill_between(hours[target_index], quantiles[:, 0], quantiles[:, 2], color="tab:blue", alpha=0.25,
                         label="10%-90%")
    axes[0].set_xlim(-24, hours[-1])
    axes[0].set_title(f"{series.name}: forecast made 2 h earlier")
    axes[0].set_xlabel("hours after the learning part")
    axes[0].legend(fontsize=8)
    for axis, (title, judged) in zip(axes[1:], corpora.items(), strict=True):
        methods = [m for m in judged.errors if m != "seasonal naive"]
        x = np.arange(len(HORIZONS))
        width = 0.8 / len(methods)
        for k, method in enumerate(methods):
            axis.bar(x + (k - (len(methods) - 1) / 2) * width, geometric_mean(relative(judged, method)), width=width,
                     label=method)
        axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        axis.set_xticks(x, [horizon_label(h) for h in HORIZONS])
        axis.set_title(f"{title}: MASE / seasonal naive's (lower is better)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    path = out / "img" / "forecast-quality.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    return str(path.relative_to(out))


def example_forecast(analysis: Analysis, trained, series: Series) -> tuple[Series, np.ndarray, np.ndarray]:
    shape = sample_shape(analysis)
    two_hours = shape.horizons.index(int(7200 / STEP))
    ends = np.arange(max(series.split - SEASON, shape.span), len(series.values) - shape.horizons[-1], 2)
    stream = calibration_stream(series, shape, ends, 2)
    exported, _ = exported_forecasts(analysis, cfc_forecasts(trained, shape, series, stream), series.values, stream)
    return series, ends + shape.horizons[two_hours], exported[np.searchsorted(stream, ends),
                                                              horizon_columns(shape).index(two_hours)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nab", type=Path, default=REPO.parent / "shared" / "data" / "nab")
    parser.add_argument("--smd", type=Path, default=REPO.parent / "shared" / "data" / "smd")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--train-time", type=float, default=240.0, help="seconds of training per corpus")
    parser.add_argument("--origins", type=int, default=ORIGINS, help="forecast origins per series")
    parser.add_argument("--workers", type=int, default=2, help="processes for the statistical anchors")
    parser.add_argument("--weekly-mstl", action="store_true", help="also MSTL with a weekly season (slow)")
    args = parser.parse_args()
    torch.manual_seed(0)
    started = time.time()
    analyses = {variant: univariate(args.train_time, seasons) for variant, seasons in VARIANTS.items()}
    nab, skipped = nab_series(args.nab)
    corpora = {"NAB": nab, "Replay fleet": replay_series(), "SMD": smd_series(args.smd)}
    judged, reports, example = {}, {}, None
    for title, series in corpora.items():
        models = {}
        for variant, analysis in analyses.items():
            trained, reports[title, variant] = trained_model(title, analysis, series)
            models[variant] = (analysis, trained)
        print(f"{title}: judging", file=sys.stderr)
        judged[title] = judge(models, series, args.origins, args.weekly_mstl, args.workers)
        if title == "Replay fleet":
            example = example_forecast(*models[SHIPPED], next(s for s in series if s.name == "host-07/memory"))
        print("\n".join(table(judged[title])), file=sys.stderr)
    assert example is not None
    image = plot(args.out, judged, example)
    lines = ["# Forecast quality", "",
             "Made by `make forecast-quality` (`python bench/forecast_quality.py`) on "
             f"{time.strftime('%Y-%m-%d')}, CPU only, in {time.time() - started:.0f} s. Each method forecasts "
             f"from what is known at {args.origins} origins spread over each series' judged part; the "
             "CfC never saw that part. CfC is the forecaster as shipped (`forecast.seasons: [1d, 1w]`); CfC, no "
             "seasons the same with `forecast.seasons: []`. Figures: MASE relative to seasonal naive (the value a day "
             "before the target), as a geometric mean over series (below 1: better than seasonal naive); the share of "
             "series where each CfC's mean absolute error is below each statistical anchor's; the share of outcomes "
             "inside each CfC's 10-90% band (80% is exact), as exported (each series' band calibrated by its own "
             f"outcomes, from {CALIBRATION_LEAD * STEP / DAY:g} days before its judged part, a forecast every "
             f"{CALL * STEP / 60:g} minutes; README 'Forecasts') and, in brackets, the model's own. "
             "AutoETS is non-seasonal (ETS refuses a 288-step season); "
             "MSTL decomposes the last 4 days with a daily season.", "",
             f"![MASE relative to seasonal naive, and a forecast]({image})", ""]
    described = {"NAB": f"every 5-minute series, learning from its first 60% (left out, other steps: "
                        f"{', '.join(skipped)})",
                 "Replay fleet": "20 hosts x 5 features of the demo fleet, 10 days to learn from, 2 days judged",
                 "SMD": "8 servers x 38 metrics averaged to 5 minutes, train rows to learn from, test rows judged "
                        "(metrics that never move left out)"}
    for title, result in judged.items():
        trainings = "; ".join(f"{variant}, {summary(reports[title, variant])}" for variant in VARIANTS)
        lines += [f"## {title}: {len(result.names)} series", "", f"{described[title]}. Training: {trainings}.", "",
                  *table(result), ""]
    replace_section(args.out / "forecast-quality.md", "forecast-quality", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
