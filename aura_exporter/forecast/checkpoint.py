"""Checkpoints: written atomically, loaded safely, refused when they belong to something else.

A checkpoint is written atomically (aura_exporter.storage): a crash at any moment leaves either
the old checkpoint or the new one, never half of one. It is read with `torch.load(weights_only=True)`,
which unpickles tensors and plain containers only. It carries the fingerprint of the configuration
it was trained for and the model version; any mismatch, or a file that cannot be read, is a
CheckpointError with a reason, and the caller retrains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from aura_exporter.config import Analysis
from aura_exporter.forecast.model import MODEL_VERSION
from aura_exporter.storage import StateFileError, check_header, write_atomically

FORMAT = "aura-forecast-checkpoint"


class CheckpointError(StateFileError):
    REASONS = ("missing", "corrupt", "foreign", "version")


REASONS = CheckpointError.REASONS


def fingerprint(analysis: Analysis) -> str:
    """What a trained model depends on: features and their queries, step, window, forecaster settings."""
    relevant = {
        "features": [(f.name, f.query) for f in analysis.features],
        "step": analysis.step,
        "window": analysis.window,
        "interval": analysis.interval,  # the nowcast horizon
        "horizons": list(analysis.forecast.horizons),
        "units": analysis.forecast.units,
        "context": analysis.forecast.context,
        "input_steps": analysis.forecast.input_steps,
        "trend_share": analysis.forecast.trend_share,
        "seasons": list(analysis.forecast.seasons),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def checkpoint_path(storage: Path, analysis: Analysis) -> Path:
    return storage / f"forecast-{analysis.name}.pt"  # analysis names are validated identifiers


def save_checkpoint(path: Path, analysis: Analysis, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "model_version": MODEL_VERSION, "fingerprint": fingerprint(analysis),
               "state_dict": {k: v.detach().cpu() for k, v in state.items()}, "meta": meta}
    write_atomically(path, lambda stream: torch.save(payload, stream))


def load_checkpoint(path: Path, analysis: Analysis) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a checkpoint made for this analysis; CheckpointError otherwise."""
    if not path.exists():
        raise CheckpointError("missing", f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, wrong types: all mean "unusable file"
        raise CheckpointError("corrupt", f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(payload, dict):
        raise CheckpointError("corrupt", f"{path} is not an AURA forecast checkpoint")
    check_header(CheckpointError, path, "an AURA forecast checkpoint", (FORMAT, MODEL_VERSION, fingerprint(analysis)),
                 (payload.get("format"), payload.get("model_version"), payload.get("fingerprint")))
    state, meta = payload.get("state_dict"), payload.get("meta", {})
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("corrupt", f"{path} has no usable weights")
    return state, meta


def describe(analysis: Analysis) -> dict[str, Any]:
    """Meta data stored beside the weights, for people reading a checkpoint."""
    return {"analysis": analysis.name, "forecast": asdict(analysis.forecast)}
