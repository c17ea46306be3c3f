"""What the forecast benchmarks share: three corpora at 5-minute steps, one model per corpus, cached.

- NAB: every series sampled every 5 minutes (47 of 58), learning from its first 60%;
- the replay fleet: 20 hosts x 5 features, 10 days to learn from, 2 days judged;
- SMD: 8 real servers x 38 metrics, 1-minute rows averaged to 5 minutes, its train rows to learn
  from, its test rows judged (metrics that never move are left out).

A trained model is kept in results/forecast-models/ with what it was trained on and how, and used
again by the next benchmark that asks for the same (training one takes minutes).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smd_baselines import read_smd_machine  # noqa: E402

from aura_exporter.config import Analysis, Feature, ForecastConfig  # noqa: E402
from aura_exporter.forecast.data import Samples, lagged_values, training_samples  # noqa: E402
from aura_exporter.forecast.manager import build_trained, model_shape, sample_shape  # noqa: E402
from aura_exporter.forecast.model import MODEL_VERSION, pick_device  # noqa: E402
from aura_exporter.forecast.stage import TrainedModel, predict  # noqa: E402
from aura_exporter.forecast.tailoring import Tailoring  # noqa: E402
from aura_exporter.forecast.train import TrainingReport, train_model  # noqa: E402
from aura_exporter.progress import progress_bar  # noqa: E402
from aura_exporter.sources.replay import FEATURES, ReplayFleet  # noqa: E402
from aura_exporter.windows import fill_gaps  # noqa: E402

STEP = 300.0
DAY = 86400.0
SEASON = int(DAY / STEP)  # 288 steps
WEEK = 7 * SEASON
HORIZONS = (900.0, 3600.0, 7200.0, 14400.0)
REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "results" / "forecast-models"
# The forecasters compared: as shipped (seasons of a day and a week, forecast.seasons), and without them.
VARIANTS = {"CfC": (DAY, 7 * DAY), "CfC, no seasons": ()}
# The history a starting exporter learns its bands from (baseline.learn_from_history's default, 2 days): the
# calibration of a series' bands begins that long before its judged part.
CALIBRATION_LEAD = int(2 * DAY / STEP)


@dataclass
class Series:
    name: str
    timestamps: np.ndarray  # [N] on the 5-minute grid
    values: np.ndarray  # [N], NaN where missing
    split: int  # learning part is [:split]


def on_grid(stamps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grid = np.arange(stamps[0], stamps[-1] + STEP / 2, STEP)
    placed = np.full(len(grid), np.nan)
    placed[np.rint((stamps - grid[0]) / STEP).astype(int)] = values
    filled, _ = fill_gaps(placed[None, :, None], max_gap=4, max_missing_ratio=1.0)
    return grid, filled[0, :, 0]


def nab_series(root: Path) -> tuple[list[Series], list[str]]:
    kept, skipped = [], []
    for path in sorted((root / "data").glob("*/*.csv")):
        rows = list(csv.DictReader(path.open()))
        stamps = np.array([dt.datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S")
                           .replace(tzinfo=dt.UTC).timestamp() for r in rows])
        name = f"{path.parent.name}/{path.name}"
        if np.median(np.diff(stamps)) != STEP:
            skipped.append(name)
            continue
        grid, values = on_grid(stamps, np.array([float(r["value"]) for r in rows]))
        kept.append(Series(name, grid, values, int(len(grid) * 0.6)))
    return kept, skipped


def replay_series(origin: float = 1_764_000_000.0) -> list[Series]:
    fleet = ReplayFleet(hosts=20, origin=origin)
    learn, judge = 10 * SEASON, 2 * SEASON
    grid = origin + STEP * np.arange(learn + judge)
    return [Series(f"host-{h:02d}/{feature}", grid, values[h], learn)
            for feature in FEATURES for values in [fleet.values(feature, grid)] for h in range(fleet.hosts)]


def smd_series(root: Path) -> list[Series]:
    out = []
    for path in sorted(root.glob("*.csv.gz")):
        times, values, train, _ = read_smd_machine(path)
        rows = len(times) // 5 * 5
        grid = times[:rows:5] + 4 * 60.0  # a 5-minute mean is known at its last minute
        means = values[:rows].reshape(-1, 5, values.shape[1]).mean(axis=1)
        split = int(train[:rows:5].sum())
        for metric in range(means.shape[1]):
            column = means[:, metric]
            if np.ptp(column[:split]) > 0 and np.ptp(column[split:]) > 0:  # a metric that never moves says nothing
                out.append(Series(f"{path.name.removesuffix('.csv.gz')}/m{metric:02d}", grid, column, split))
    return out


def univariate(train_time: float, seasons: tuple[float, ...] = ()) -> Analysis:
    forecast = ForecastConfig(horizons=HORIZONS, context=14400.0, input_steps=48, history=30 * DAY, max_epochs=60,
                              max_train_time=train_time, max_samples=30000, seasons=seasons)
    return Analysis(name="quality", entity_labels=("series",), step=STEP, window=10 * STEP, interval=STEP,
                    features=(Feature("value", "value", "resources"),), forecast=forecast)


def trained_model(corpus: str, analysis: Analysis, series: list[Series], seed: int = 0
                  ) -> tuple[TrainedModel, TrainingReport]:
    """The corpus' model: from results/forecast-models/ when one was trained on the same series the same
    way, else trained now (and kept there)."""
    key = json.dumps({"model_version": MODEL_VERSION, "forecast": asdict(analysis.forecast), "seed": seed,
                      "series": hashlib.sha256("\n".join(s.name for s in series).encode()).hexdigest()[:16]},
                     sort_keys=True)
    path = MODELS / f"{corpus.lower().replace(' ', '-')}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        if saved["key"] == key:
            print(f"{corpus}: the model in {path.relative_to(REPO)}", file=sys.stderr)
            return build_trained(analysis, saved["state"], {}), TrainingReport(**saved["report"])
    print(f"{corpus}: training on {len(series)} series", file=sys.stderr)
    trained, report = train(analysis, series, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key": key, "state": trained.model.state_dict(), "report": asdict(report)}, path)
    return trained, report


def train(analysis: Analysis, series: list[Series], seed: int = 0) -> tuple[TrainedModel, TrainingReport]:
    """One model for all series of a corpus: samples cut from each series' learning part, pooled."""
    rng = np.random.default_rng(seed)
    shape = sample_shape(analysis)
    per_series = max(64, analysis.forecast.max_samples // len(series))
    parts = []
    for s in series:
        try:
            parts.append(training_samples(s.values[None, : s.split, None], s.timestamps[: s.split], shape,
                                          per_series, rng, trend_share=analysis.forecast.trend_share))
        except ValueError:  # a learning part too short for one context and horizon
            continue

    def join(samples: list[Samples]) -> Samples:
        return Samples(*(np.concatenate([getattr(p, name) for p in samples])
                         for name in ("inputs", "anchors", "targets")))

    model, report = train_model(model_shape(analysis), join([p[0] for p in parts]), join([p[1] for p in parts]),
                                pick_device(analysis.forecast.device), analysis.forecast.max_epochs,
                                analysis.forecast.max_train_time, progress=progress_bar("training", unit="epoch"),
                                seed=seed)
    return build_trained(analysis, model.state_dict(), {}), report


def cfc_inputs(shape, values: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The contexts [O, n, 1] ending at `ends` of a series' `values`, their steps [O, n] and their seasons' lagged
    values [O, S, n + H, 1]."""
    index = shape.context_index(ends)
    lagged = lagged_values(values[None, :, None], np.zeros(len(ends), dtype=int), index, ends, shape)
    return values[index][..., None], index, lagged


def cfc_forecasts(trained, shape, series: Series, ends: np.ndarray) -> np.ndarray:
    """[O, H, 3] the model's quantiles at `shape`'s horizons from contexts ending at `ends`, seasons included."""
    contexts, index, lagged = cfc_inputs(shape, series.values, ends)
    return predict(trained, contexts, series.timestamps[index], lagged)[:, 0]


def horizon_columns(shape) -> list[int]:
    """Where HORIZONS are among the model's horizons (which also hold the one-step nowcast)."""
    return [shape.horizons.index(int(h / STEP)) for h in HORIZONS]


def calibration_stream(series: Series, shape, ends: np.ndarray, every: int) -> np.ndarray:
    """The steps an exporter's cycles forecast at, `every` steps from CALIBRATION_LEAD before the judged part (as
    early as a context allows) to the last of `ends`, on a grid that holds each of `ends` (which must be
    `every` steps apart, or a multiple of it)."""
    first = max(shape.span, series.split - CALIBRATION_LEAD)
    return np.arange(ends[0] - (ends[0] - first) // every * every, ends[-1] + 1, every)


def exported_forecasts(analysis: Analysis, raw: np.ndarray, values: np.ndarray, stream: np.ndarray,
                       tailoring: Tailoring | None = None) -> tuple[np.ndarray, np.ndarray]:
    """At HORIZONS, [O, H, 3] each, the model's forecasts `raw` [O, all its horizons, 3], made at the steps `stream`
    in time order, as the exporter tailors them to the series by its own outcomes
    (aura_exporter.forecast.tailoring): the exported forecast (combined with simple forecasts, its band scaled)
    and the model's own with its band scaled (what the breach reads). Each step first judges the forecasts that
    came due then against `values` (a fresh start unless `tailoring` is given)."""
    tailoring = tailoring or Tailoring(analysis)
    contexts, _, lagged = cfc_inputs(sample_shape(analysis), values, stream)
    exported, model = (np.empty((len(stream), len(HORIZONS), 3)) for _ in range(2))
    for i, end in enumerate(stream):
        tailored = tailoring.update((("series",),), end * STEP, values[end][None, None], raw[i][None, None],
                                    contexts[i][None], lagged[i][None])
        exported[i], model[i] = tailored.exported[0, 0], tailored.model[0, 0]
    return exported, model


def replace_section(path: Path, name: str, lines: list[str]) -> None:
    """Write `lines` into the file between the markers of section `name` (at its end, the first time),
    so two benchmarks can share one page without overwriting each other."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text() if path.exists() else ""
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
