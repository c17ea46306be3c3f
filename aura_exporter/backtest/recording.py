"""A backtest's evidence, recorded once, so the decision layer can be replayed over it in seconds.

A full replay spends nearly all its time on windows, persistence and forecasts; what the council
decides from them (agents, risk, page budget, decisions, alerts) is a small part. `backtest
--record.evidence` keeps, per cycle and entity, the evidence the agents weighed (council/evidence.py)
in `evidence.npz`; `backtest --evidence.file FILE` then runs only the council over it, with the settings of
the configuration given (sigmas, evidence kinds, warn, quorum, confirm and clear cycles, the page
budget), and writes the same outputs as a full replay: equal to one when the settings are the same
(tests/test_recording.py). What the evidence itself depends on (features, windows, topology,
forecasts, peers) needs a full replay to change.

The file: an .npz read with `allow_pickle=False`, FORMAT and VERSION, the analysis' features, and one
group per sampling interval of the replayed files (NAB's files are not all sampled alike): its scale
factor, cycle times and readiness, entity keys, the rows evidence was given for (a cycle and an entity
each) with the evidence arrays, and each entity's scored rows (own times, timeline, first feature's
value, learning, shift).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aura_exporter.config import Analysis
from aura_exporter.council.evidence import GRAPH_SIGMAS, Evidence, GraphEvidence, compared_with_peers
from aura_exporter.snapshot import AnalysisResult
from aura_exporter.storage import StateFileError, keys_array, read_keys, write_atomically
from aura_exporter.windows import EntityKey

FORMAT = "aura-evidence"
VERSION = 3  # 2: the state evidence; 3: whether it is settled
PER_FEATURE = ("level", "state", "surprise", "breach", "time_to_breach", "novelty", "record", "level_units")
GRAPH_PREFIX = "graph_"
ROW_PARTS = ("times", "timeline", "values", "learning", "shift")


class RecordingError(StateFileError):
    REASONS = ("corrupt", "foreign", "version")


@dataclass
class Recording:
    """What the agents were shown, cycle after cycle, for one group of entities."""

    analysis: Analysis
    times: list[float] = field(default_factory=list)
    ready: list[bool] = field(default_factory=list)
    keys: dict[EntityKey, int] = field(default_factory=dict)
    cycle_of_row: list[int] = field(default_factory=list)
    entity_of_row: list[int] = field(default_factory=list)
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)
    graph_analysis: str | None = None

    def add(self, result: AnalysisResult, residual: np.ndarray) -> None:
        evidence = result.verdict.evidence
        cycle = len(self.times)
        self.times.append(result.data_time)
        self.ready.append(result.model_ready)
        for key in result.windows.entities:
            self.cycle_of_row.append(cycle)
            self.entity_of_row.append(self.keys.setdefault(key, len(self.keys)))
        columns = {name: getattr(evidence, name) for name in PER_FEATURE}
        columns |= {"drift": evidence.drift, "isolation": evidence.isolation, "settled": evidence.settled,
                    "residual": residual}
        if evidence.graph is not None:
            self.graph_analysis = evidence.graph.analysis
            columns |= {GRAPH_PREFIX + kind: values for kind, values in evidence.graph.values.items()}
        for name, values in columns.items():  # float64: a re-run equals a replay to the last digit
            self.arrays.setdefault(name, []).append(np.asarray(values, dtype=np.float64))

    def cycles(self):
        """(time, ready, keys, Evidence, residual) of each recorded cycle, in order."""
        keys = list(self.keys)
        rows = np.array(self.cycle_of_row, dtype=np.int64)
        starts = np.searchsorted(rows, np.arange(len(self.times) + 1))
        stacked = {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in self.arrays.items()}
        entities = np.array(self.entity_of_row, dtype=np.int64)
        for cycle, moment in enumerate(self.times):
            part = slice(starts[cycle], starts[cycle + 1])
            get = {name: values[part].astype(np.float64) for name, values in stacked.items()}
            graph = None
            if self.graph_analysis is not None:
                graph = GraphEvidence(self.graph_analysis, {kind: get[GRAPH_PREFIX + kind] for kind in GRAPH_SIGMAS},
                                      {kind: {} for kind in GRAPH_SIGMAS})
            features = self.analysis.features
            evidence = Evidence(
                features=tuple(f.name for f in features), roles=tuple(f.role for f in features),
                level=get["level"], state=get["state"], surprise=get["surprise"], breach=get["breach"],
                time_to_breach=get["time_to_breach"], novelty=get["novelty"], record=get["record"],
                drift=get["drift"], isolation=get["isolation"], level_units=get["level_units"],
                settled=get["settled"].astype(bool), graph=graph,
                peers=compared_with_peers(int(part.stop - part.start), self.analysis.council.peers))
            yield moment, self.ready[cycle], tuple(keys[e] for e in entities[part]), evidence, get["residual"]

    def arrays_to_save(self, prefix: str) -> dict[str, np.ndarray]:
        """The recording as arrays, named with `prefix` (its group's)."""
        saved = {"times": np.array(self.times, dtype=np.float64), "ready": np.array(self.ready, dtype=bool),
                 "keys": keys_array(self.keys),
                 "cycle_of_row": np.array(self.cycle_of_row, dtype=np.int64),
                 "entity_of_row": np.array(self.entity_of_row, dtype=np.int64),
                 "graph_analysis": np.array(self.graph_analysis or "")}
        saved |= {f"evidence_{name}": np.concatenate(parts) for name, parts in self.arrays.items()}
        return {prefix + name: value for name, value in saved.items()}

    @classmethod
    def from_arrays(cls, analysis: Analysis, get: dict[str, np.ndarray]) -> Recording:
        """A group's recording from load_recordings' arrays (ValueError, KeyError when malformed)."""
        rows = get["cycle_of_row"].tolist()
        starts = np.searchsorted(get["cycle_of_row"], np.arange(len(get["times"]) + 1))
        recording = cls(analysis, get["times"].tolist(), get["ready"].astype(bool).tolist(),
                        {key: i for i, key in enumerate(read_keys(get["keys"]))},
                        rows, get["entity_of_row"].tolist(), graph_analysis=str(get["graph_analysis"]) or None)
        for name, values in get.items():
            if name.startswith("evidence_"):
                if len(values) != len(rows):
                    raise ValueError(f"{name} has {len(values)} rows, not {len(rows)}")
                recording.arrays[name.removeprefix("evidence_")] = np.split(values, starts[1:-1])
        return recording


def save_recordings(path: Path, analysis: Analysis, groups: list[tuple[float, Recording, dict]]) -> None:
    """Each group's (scale factor, recording, {entity: its scored rows as arrays}) in one file."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "version": np.array(VERSION), "analysis": np.array(analysis.name),
        "features": np.array(json.dumps([f.name for f in analysis.features])),
        "groups": np.array(len(groups)),
    }
    for g, (factor, recording, rows) in enumerate(groups):
        prefix = f"g{g}_"
        arrays[prefix + "factor"] = np.array(factor)
        arrays |= recording.arrays_to_save(prefix)
        arrays[prefix + "row_keys"] = keys_array(rows)
        for part in ROW_PARTS:
            arrays[f"{prefix}rows_{part}"] = (np.concatenate([r[part] for r in rows.values()]) if rows
                                              else np.empty(0))
        arrays[prefix + "rows_lengths"] = np.array([len(r["times"]) for r in rows.values()], dtype=np.int64)
    write_atomically(path, lambda stream: np.savez_compressed(stream, **arrays))


def load_recordings(path: Path, analysis: Analysis) -> list[tuple[float, dict[str, np.ndarray]]]:
    """Each group's scale factor and its arrays, unprefixed (for Recording.from_arrays on the rescaled
    analysis, and recorded_rows); RecordingError when the file is not a recording of these features."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        if str(arrays["format"]) != FORMAT:
            raise RecordingError("corrupt", f"{path} is not an AURA evidence recording")
        if int(arrays["version"]) != VERSION:
            raise RecordingError("version", f"{path} has format version {arrays['version']}, this reads {VERSION}")
        if json.loads(str(arrays["features"])) != [f.name for f in analysis.features]:
            raise RecordingError("foreign", f"{path} was recorded for other features than analysis "
                                            f"{analysis.name!r} has")
        groups = []
        for g in range(int(arrays["groups"])):
            prefix = f"g{g}_"
            groups.append((float(arrays[prefix + "factor"]),
                           {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}))
        return groups
    except RecordingError:
        raise
    except Exception as err:  # missing, truncated, not a zip, pickled content, missing arrays: unusable
        raise RecordingError("corrupt", f"cannot read the evidence recording {path}: {err}") from err


def recorded_rows(arrays: dict[str, np.ndarray]) -> dict[EntityKey, dict[str, np.ndarray]]:
    """Each entity's scored rows of a group, as save_recordings was given them."""
    keys = read_keys(arrays["row_keys"])
    cuts = np.cumsum(arrays["rows_lengths"])[:-1]
    parts = {part: np.split(arrays[f"rows_{part}"], cuts) if keys else [] for part in ROW_PARTS}
    return {key: {part: parts[part][i] for part in ROW_PARTS} for i, key in enumerate(keys)}
