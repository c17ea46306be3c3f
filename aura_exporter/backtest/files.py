"""History from files: CSV `timestamp,value` per series, or a folder of them.

- An analysis with one feature: every CSV file is an entity, named by its path relative to the
  folder without `.csv` (NAB's layout: `realKnownCause/nyc_taxi`).
- An analysis with several features: every folder holding `<feature>.csv` files is an entity.

Timestamps are ISO 8601 (`2014-02-14 14:30:00`, zone-less ones read as UTC) or Unix seconds; a
step back of up to an hour is read as a daylight-saving change of a local clock.
Files that cover different periods are laid on one timeline: each is shifted by whole weeks, so
that all start within a week of the earliest and keep their time of day and weekday; the shift is
kept, and every output reports the file's own timestamps.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.sources.history import History, history_grid

WEEK = 7 * 86400.0


class InputError(Exception):
    """A file that cannot be read as a series; the message names the file and the line."""


@dataclass(frozen=True)
class FileSeries:
    timestamps: np.ndarray  # Unix seconds, ascending
    values: np.ndarray


@dataclass(frozen=True)
class FileHistory:
    history: History
    shifts: dict[tuple[str, ...], float]  # entity → seconds added to its own timestamps


def parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def read_series(path: Path) -> FileSeries:
    times, values = [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
                raise InputError(f"{path}: the first line must be the header `timestamp,value`")
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue
                try:
                    times.append(parse_time(row[0]))
                    values.append(float(row[1]))
                except (ValueError, IndexError) as err:
                    raise InputError(f"{path}:{line}: not a `timestamp,value` row ({err})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read: {err}") from err
    stamps = np.array(times, dtype=np.float64)
    if len(stamps) < 2:
        raise InputError(f"{path}: fewer than two rows")
    stamps = undo_clock_change(stamps)
    if np.any(np.diff(stamps) < 0):  # repeats happen (local time across a DST change): the last one wins
        raise InputError(f"{path}: timestamps go backwards by more than an hour")
    return FileSeries(stamps, np.array(values, dtype=np.float64))


def undo_clock_change(stamps: np.ndarray) -> np.ndarray:
    """Local times that step back by up to an hour (daylight saving time ending) are read as the
    clock change they are: every row from there on is an hour later than it says."""
    steps = np.diff(stamps)
    back = (steps < 0) & (steps >= -3600.0)
    return stamps + np.concatenate([[0.0], np.cumsum(np.where(back, 3600.0, 0.0))])


def find_entities(root: Path, analysis: Analysis) -> dict[str, dict[str, Path]]:
    """entity name → feature name → file."""
    if root.is_file():
        return {root.stem: {analysis.features[0].name: root}}
    if not root.is_dir():
        raise InputError(f"{root}: no such file or folder")
    features = [f.name for f in analysis.features]
    found: dict[str, dict[str, Path]] = {}
    if len(features) == 1:
        for path in sorted(root.rglob("*.csv")):
            found[str(path.relative_to(root).with_suffix(""))] = {features[0]: path}
    else:
        for folder in sorted({p.parent for p in root.rglob("*.csv")}):
            files = {name: folder / f"{name}.csv" for name in features if (folder / f"{name}.csv").exists()}
            if files:
                found[str(folder.relative_to(root))] = files
    if not found:
        raise InputError(f"{root}: no CSV series found for features {', '.join(features)}")
    return found


def native_step(series: FileSeries) -> float:
    return float(np.median(np.diff(series.timestamps)))


def files_history(analysis: Analysis, entities: dict[str, dict[str, FileSeries]]) -> FileHistory:
    """The entities on the analysis' step grid, each shifted by whole weeks onto one timeline."""
    starts = {name: min(s.timestamps[0] for s in files.values()) for name, files in entities.items()}
    origin = min(starts.values())
    shifts = {name: -np.floor((start - origin) / WEEK) * WEEK for name, start in starts.items()}
    end = max(s.timestamps[-1] + shifts[name] for name, files in entities.items() for s in files.values())
    grid = history_grid(analysis, origin, end)
    values = np.full((len(entities), len(grid), len(analysis.features)), np.nan)
    for row, (name, files) in enumerate(entities.items()):
        for column, feature in enumerate(analysis.features):
            series = files.get(feature.name)
            if series is None:
                continue
            index = np.rint((series.timestamps + shifts[name] - grid[0]) / analysis.step).astype(np.int64)
            inside = (index >= 0) & (index < len(grid))
            values[row, index[inside], column] = series.values[inside]
    keys = tuple((name,) for name in entities)
    return FileHistory(History(keys, grid, values), {(name,): float(shifts[name]) for name in entities})
