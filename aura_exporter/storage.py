"""The state directory: checked once at start-up, and written atomically.

Every state file (forecaster checkpoints, baselines) is written to a temporary file in the same
directory, flushed and fsynced, then renamed over the old one, and the directory is fsynced: a
crash or SIGKILL at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


class StorageError(Exception):
    pass


class StateFileError(Exception):
    """A state file that cannot be used (or written); `reason`, one of the subclass' REASONS, is the
    `reason` label of its error counter."""

    REASONS: tuple[str, ...] = ()

    def __init__(self, reason: str, message: str):
        assert reason in self.REASONS, reason
        self.reason = reason
        super().__init__(message)


def check_header(error: type[StateFileError], path: Path, what: str, expected: tuple[str, int, str],
                 found: tuple[Any, Any, Any]) -> None:
    """A state file's (format, version, configuration fingerprint) against what this exporter writes:
    `error` with reason corrupt (not such a file), version or foreign (made for another configuration)."""
    (kind, version, fingerprint), (found_kind, found_version, found_fingerprint) = expected, found
    if found_kind != kind:
        raise error("corrupt", f"{path} is not {what}")
    if found_version != version:
        raise error("version", f"{path} has format version {found_version!r}, this exporter reads {version}")
    if found_fingerprint != fingerprint:
        raise error("foreign", f"{path} was made for another configuration")


def prepare_storage(path: str) -> Path:
    """The state directory, created and checked for writing."""
    storage = Path(path)
    try:
        storage.mkdir(parents=True, exist_ok=True)
        probe = storage / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise StorageError(f"--storage.path {path!r} is not a writable directory: {err.strerror}") from err
    return storage


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace `path` with what `write` puts in the stream it is given, all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # from a writer killed mid-write
        leftover.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def keys_array(keys: Iterable[tuple[str, ...]]) -> np.ndarray:
    """Entity keys (tuples of label values) as one JSON string array: no pickling in state files."""
    return np.array(json.dumps([list(key) for key in keys]))


def read_keys(array: np.ndarray) -> list[tuple[str, ...]]:
    """The keys `keys_array` wrote (ValueError, TypeError when malformed)."""
    return [tuple(str(part) for part in key) for key in json.loads(str(array))]
