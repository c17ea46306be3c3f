"""Baselines that survive a restart: the BaselineStore saved to and loaded from the state directory.

A restart should not blind the sidecar for a window plus the drift warm-up, so each analysis'
baselines (scales, reference diagrams, drift histories) are saved every `baseline.save_interval`
and on shutdown, atomically (aura_exporter.storage), as an .npz read with `allow_pickle=False`:
plain arrays, nothing executable. A file made for another configuration (other features, entity
labels, step, window or homology dimensions), of another format version, or unreadable, is a
BaselineFileError with a reason; the caller counts it and learns afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from pathlib import Path

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.storage import StateFileError, check_header, keys_array, read_keys, write_atomically
from aura_exporter.topology.baseline import BaselineStore, EntityBaseline

FORMAT = "aura-baselines"
VERSION = 1
# arrays of other learners saved alongside: the council's page budget, the usual states (topology/state.py), the
# forecast bands' factors and combination errors (forecast/bands.py, forecast/combination.py)
EXTRA_PREFIXES = ("council_", "state_", "bands_", "combination_")


class BaselineFileError(StateFileError):
    REASONS = ("corrupt", "foreign", "version", "write")


REASONS = BaselineFileError.REASONS


def baselines_path(storage: Path, analysis: Analysis) -> Path:
    return storage / f"baselines-{analysis.name}.npz"  # analysis names are validated identifiers


def fingerprint(analysis: Analysis) -> str:
    """What a baseline's numbers mean: the features, the entities, the window's shape, the homology and
    the clouds it is computed on."""
    relevant = {
        "features": [(f.name, f.query) for f in analysis.features],
        "entity_labels": list(analysis.entity_labels),
        "step": analysis.step,
        "window": analysis.window,
        "dims": list(analysis.topology.homology_dimensions),
        "clouds": [analysis.topology.embedding_dimension, analysis.topology.embedding_delay,
                   analysis.topology.max_points],
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def save_baselines(path: Path, analysis: Analysis, store: BaselineStore, first_success: float | None,
                   extra: dict[str, np.ndarray] | None = None) -> None:
    """Write the store, and the `extra` arrays of later stages (names starting with one of EXTRA_PREFIXES, read back
    by load_baselines); OSError (a full or vanished disk) is the caller's to count."""
    entities = list(store.entities.items())
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "version": np.array(VERSION), "fingerprint": np.array(fingerprint(analysis)),
        "first_success": np.array(np.nan if first_success is None else first_success),
        "keys": keys_array(key for key, _ in entities),
        "center": _stack([e.center for _, e in entities], len(analysis.features)),
        "scale": _stack([e.scale for _, e in entities], len(analysis.features)),
        "learned_at": np.array([e.learned_at for _, e in entities], dtype=np.float64),
        "last_seen": np.array([e.last_seen for _, e in entities], dtype=np.float64),
        "relearn": np.array([e.relearn for _, e in entities], dtype=bool),
        "has_reference": np.array([e.reference is not None for _, e in entities], dtype=bool),
    }
    arrays["history"], arrays["history_lengths"] = _ragged([np.fromiter(e.history, np.float64) for _, e in entities],
                                                           width=1)
    for dim in store.dims:
        pairs = [e.reference[dim] if e.reference is not None else np.empty((0, 2)) for _, e in entities]
        arrays[f"reference_{dim}"], arrays[f"reference_{dim}_lengths"] = _ragged(pairs, width=2)
    assert all(name.startswith(EXTRA_PREFIXES) for name in extra or {}), "extra arrays need EXTRA_PREFIXES"
    arrays.update(extra or {})
    write_atomically(path, lambda stream: np.savez(stream, **arrays))


def load_baselines(path: Path, analysis: Analysis, store: BaselineStore,
                   extra: dict[str, np.ndarray] | None = None) -> float | None:
    """Fill `store` (and `extra` with the later stages' arrays) from the file and return the analysis'
    first successful data time (None when unknown); BaselineFileError when the file cannot be used (the
    store is then left empty)."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
            if extra is not None:
                extra.update({name: value for name, value in arrays.items() if name.startswith(EXTRA_PREFIXES)})
    except Exception as err:  # missing, truncated or not a zip, bad headers, pickled content: all "unusable"
        raise BaselineFileError("corrupt", f"cannot read baselines {path}: {err}") from err
    try:
        return _restore(path, analysis, store, arrays)
    except (KeyError, ValueError, TypeError, IndexError) as err:
        store.entities.clear()
        raise BaselineFileError("corrupt", f"{path} has malformed baselines: {err}") from err


def _restore(path: Path, analysis: Analysis, store: BaselineStore, arrays: dict[str, np.ndarray]) -> float | None:
    check_header(BaselineFileError, path, "an AURA baselines file", (FORMAT, VERSION, fingerprint(analysis)),
                 (str(arrays["format"]), int(arrays["version"]), str(arrays["fingerprint"])))
    keys = read_keys(arrays["keys"])
    features = len(analysis.features)
    if arrays["center"].shape != (len(keys), features) or arrays["scale"].shape != (len(keys), features):
        raise ValueError("scales do not match the entities and features")
    histories = _split(arrays["history"], arrays["history_lengths"], len(keys))
    references = {dim: _split(arrays[f"reference_{dim}"], arrays[f"reference_{dim}_lengths"], len(keys))
                  for dim in store.dims}
    store.entities.clear()
    for i, key in enumerate(keys):
        store.entities[key] = EntityBaseline(
            center=arrays["center"][i].astype(np.float64), scale=arrays["scale"][i].astype(np.float64),
            learned_at=float(arrays["learned_at"][i]), last_seen=float(arrays["last_seen"][i]),
            history=deque(histories[i].ravel().astype(np.float64).tolist(), maxlen=store.config.history),
            reference={dim: references[dim][i].reshape(-1, 2).astype(np.float64) for dim in store.dims}
            if arrays["has_reference"][i] else None,
            relearn=bool(arrays["relearn"][i]),
        )
    first_success = float(arrays["first_success"])
    return None if np.isnan(first_success) else first_success


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    return np.stack(rows).astype(np.float64) if rows else np.empty((0, width))


def _ragged(parts: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length arrays of rows `width` wide as one [rows, width] concatenation and the lengths."""
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    flat = np.concatenate([p.reshape(-1, width) for p in parts]) if parts else np.empty((0, width))
    return flat.astype(np.float64), lengths


def _split(flat: np.ndarray, lengths: np.ndarray, count: int) -> list[np.ndarray]:
    if lengths.shape != (count,) or np.any(lengths < 0) or lengths.sum() != len(flat):
        raise ValueError("lengths do not add up")
    return np.split(flat, np.cumsum(lengths)[:-1]) if count else []
