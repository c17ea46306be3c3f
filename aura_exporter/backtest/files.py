"""History from files: CSV series, plain or gzip (`.csv`, `.csv.gz`).

Two shapes of file, told apart by their header:
- `timestamp,value`: one series. With an analysis of one feature every such file is an entity, named
  by its path relative to the folder without its suffix (NAB's layout: `realKnownCause/nyc_taxi`);
  with several features, every folder of `<feature>.csv` files is an entity.
- `timestamp,<feature>,...` (a wide file): one entity, named by its path, with a column per feature.
  Columns that name no feature are left alone (a `label` column is never read); an empty cell is a
  missing sample. A `split` column says which rows are for learning: those before the first row
  that is not `train`.

Timestamps are ISO 8601 (zone-less ones read as UTC) or Unix seconds. Every output carries a row's own
timestamp; for the replay, a step back of up to an hour (a local clock leaving daylight saving time,
or a file that overlaps itself) is laid after the rows before it, so the timeline only moves forward.
Files that cover different periods are laid on one timeline: each is shifted by whole weeks, so
that all start within a week of the earliest and keep their time of day and weekday.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.history import History
from aura_exporter.sources.history import history_grid

WEEK = 7 * 86400.0
SUFFIXES = (".csv", ".csv.gz")
SPLIT = "split"
LEARNING = "train"
MOST_STEP_BACK = 3600.0


class InputError(Exception):
    """A file that cannot be read as a series; the message names the file and the line."""


@dataclass(frozen=True)
class FileSeries:
    timestamps: np.ndarray  # the file's own, Unix seconds
    timeline: np.ndarray  # the same rows, ascending (steps back undone): where the replay lays them
    values: np.ndarray
    learning: np.ndarray | None = None  # [rows] the rows a `split` column gives to learning; None without one


@dataclass(frozen=True)
class FileHistory:
    history: History
    shifts: dict[tuple[str, ...], float]  # entity → seconds added to its timeline


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


def _open(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return open(path, newline="", encoding="utf-8")


def _stem(path: Path) -> str:
    return next(path.name[:-len(s)] for s in reversed(SUFFIXES) if path.name.endswith(s))


def read_header(path: Path) -> list[str]:
    try:
        with _open(path) as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise InputError(f"{path}: cannot read: {err}") from err
    names = [h.strip() for h in header or []]
    if not names or names[0].lower() != "timestamp" or len(names) < 2:
        raise InputError(f"{path}: the first line must be a header: `timestamp,value` or `timestamp,<feature>,...`")
    return names


def is_single(header: list[str]) -> bool:
    return [h.lower() for h in header] == ["timestamp", "value"]


def read_columns(path: Path, wanted: list[str]) -> dict[str, FileSeries]:
    """The columns `wanted` of a file (`value` for a one-series file), sharing its timestamps."""
    header = read_header(path)
    index = {name: header.index(name) for name in wanted}
    split = header.index(SPLIT) if SPLIT in header else None
    times: list[float] = []
    columns: list[list[float]] = [[] for _ in wanted]
    learning: list[bool] = []
    try:
        with _open(path) as handle:
            rows = csv.reader(handle)
            next(rows)
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue
                try:
                    times.append(parse_time(row[0]))
                    for column, at in zip(columns, index.values(), strict=True):
                        column.append(_number(row[at]))
                    if split is not None:
                        learning.append(row[split].strip() == LEARNING)
                except (ValueError, IndexError) as err:
                    raise InputError(f"{path}:{line}: not a row of `{','.join(header)}` ({err})") from err
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise InputError(f"{path}: cannot read: {err}") from err
    own = np.array(times, dtype=np.float64)
    if len(own) < 2:
        raise InputError(f"{path}: fewer than two rows")
    timeline = forward_timeline(own)
    if np.any(np.diff(timeline) < 0):
        raise InputError(f"{path}: timestamps go backwards by more than an hour")
    marks = None if split is None else np.logical_and.accumulate(np.array(learning, dtype=bool))
    return {name: FileSeries(own, timeline, np.array(column, dtype=np.float64), marks)
            for name, column in zip(wanted, columns, strict=True)}


def _number(cell: str) -> float:
    cell = cell.strip()
    return math.nan if cell == "" else float(cell)


def read_series(path: Path) -> FileSeries:
    """A `timestamp,value` file."""
    if not is_single(read_header(path)):
        raise InputError(f"{path}: the first line must be the header `timestamp,value`")
    return read_columns(path, ["value"])["value"]


def forward_timeline(stamps: np.ndarray) -> np.ndarray:
    """The rows' own times, each step back of up to an hour undone for every row after it (a local clock
    leaving daylight saving time repeats an hour): the row is laid one usual step after the one before,
    so that the replay's timeline only moves forward."""
    steps = np.diff(stamps)
    usual = float(np.median(steps[steps > 0])) if np.any(steps > 0) else 0.0
    back = (steps < 0) & (steps >= -MOST_STEP_BACK)
    return stamps + np.concatenate([[0.0], np.cumsum(np.where(back, usual - steps, 0.0))])


def series_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))


def find_entities(root: Path, analysis: Analysis) -> dict[str, dict[str, FileSeries]]:
    """entity name → feature name → its series, from one file or a folder of them."""
    features = [f.name for f in analysis.features]
    if root.is_file():
        files, base = [root], root.parent
    elif root.is_dir():
        files, base = series_files(root), root
    else:
        raise InputError(f"{root}: no such file or folder")
    found: dict[str, dict[str, FileSeries]] = {}
    for path in files:
        header = read_header(path)
        name = str(path.relative_to(base).parent / _stem(path)).removeprefix("./")
        if not is_single(header):
            present = [f for f in features if f in header]
            if not present:
                raise InputError(f"{path}: no column for any feature ({', '.join(features)})")
            found[name] = read_columns(path, present)
        elif len(features) == 1:
            found[name] = {features[0]: read_series(path)}
        elif _stem(path) in features:
            folder = str(path.relative_to(base).parent)
            found.setdefault(folder, {})[_stem(path)] = read_series(path)
    if not found:
        raise InputError(f"{root}: no CSV series found for features {', '.join(features)}")
    return found


def native_step(series: FileSeries) -> float:
    return float(np.median(np.diff(series.timeline)))


# Files without a split learn from their first 15%: NAB's probation, the part of each file its scorer ignores.
PROBATION_SHARE = 0.15


def learning_rows(series: FileSeries, until: float | None, share: float = PROBATION_SHARE) -> np.ndarray:
    """[rows] the rows to learn from: before `until` (the file's own time) when given, else the rows a
    `split` column gives to learning, else the first `share` of the rows."""
    if until is not None:
        return series.timestamps < until
    if series.learning is not None:
        return series.learning
    return np.arange(len(series.timestamps)) < int(share * len(series.timestamps))


def files_history(analysis: Analysis, entities: dict[str, dict[str, FileSeries]]) -> FileHistory:
    """The entities on the analysis' step grid, each shifted by whole weeks onto one timeline."""
    starts = {name: min(s.timeline[0] for s in files.values()) for name, files in entities.items()}
    origin = min(starts.values())
    shifts = {name: -np.floor((start - origin) / WEEK) * WEEK for name, start in starts.items()}
    end = max(s.timeline[-1] + shifts[name] for name, files in entities.items() for s in files.values())
    grid = history_grid(analysis, origin, end)
    values = np.full((len(entities), len(grid), len(analysis.features)), np.nan)
    for row, (name, files) in enumerate(entities.items()):
        for column, feature in enumerate(analysis.features):
            series = files.get(feature.name)
            if series is None:
                continue
            index = np.rint((series.timeline + shifts[name] - grid[0]) / analysis.step).astype(np.int64)
            inside = (index >= 0) & (index < len(grid))
            values[row, index[inside], column] = series.values[inside]
    keys = tuple((name,) for name in entities)
    return FileHistory(History(keys, grid, values), {(name,): float(shifts[name]) for name in entities})
