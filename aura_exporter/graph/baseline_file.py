"""The baseline graph across restarts: a restart during an incident must not learn the incident.

Saved as JSON (aura_exporter.storage writes it atomically) whenever the baseline is learned and on
shutdown, loaded at start. The same reasons as the metric baselines' files (BaselineFileError:
corrupt, foreign, version, write) and the same counter, aura_baseline_errors_total: a file made for
another edge query, other labels, weights or window is `foreign`, and the graph learns afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aura_exporter.config import GraphAnalysis
from aura_exporter.graph.homology import GraphDiagrams
from aura_exporter.graph.stage import GraphBaseline, GraphStage
from aura_exporter.storage import check_header, write_atomically
from aura_exporter.topology.baseline_file import BaselineFileError

FORMAT = "aura-graph-baseline"
VERSION = 1


def graph_baseline_path(storage: Path, analysis: GraphAnalysis) -> Path:
    return storage / f"graph-{analysis.name}.json"  # analysis names are validated identifiers


def fingerprint(analysis: GraphAnalysis) -> str:
    """What the baseline's edges mean: the query, its labels and weights, the window they average."""
    relevant = {"query": analysis.query, "graph": repr(analysis.graph), "step": analysis.step,
                "window": analysis.window}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def save_graph_baseline(path: Path, analysis: GraphAnalysis, stage: GraphStage) -> None:
    """Write the stage's baseline (it has one); OSError is the caller's to count."""
    baseline = stage.baseline
    assert baseline is not None
    document = {
        "format": FORMAT, "version": VERSION, "fingerprint": fingerprint(analysis),
        "learned_at": baseline.learned_at, "unusual_since": stage.unusual_since,
        "edges": [[caller, callee, weight] for (caller, callee), weight in sorted(baseline.weights.items())],
        "parts": baseline.parts,
        "loops": [sorted(loop) for loop in baseline.loops],
        "diagrams": [[[float(b), None if math.isinf(d) else float(d)] for b, d in pairs]
                     for pairs in (baseline.diagrams.h0, baseline.diagrams.h1)],
    }
    text = json.dumps(document, separators=(",", ":")).encode()

    def write(stream: BinaryIO) -> None:
        stream.write(text)

    write_atomically(path, write)


def load_graph_baseline(path: Path, analysis: GraphAnalysis, stage: GraphStage) -> None:
    """Give `stage` the saved baseline; BaselineFileError (the stage untouched) when it cannot be used."""
    try:
        document = json.loads(path.read_bytes())
        if not isinstance(document, dict):
            raise BaselineFileError("corrupt", f"{path} is not an AURA graph baseline")
        check_header(BaselineFileError, path, "an AURA graph baseline", (FORMAT, VERSION, fingerprint(analysis)),
                     (document.get("format"), document.get("version"), document.get("fingerprint")))
        baseline = GraphBaseline(
            learned_at=float(document["learned_at"]),
            weights={(str(a), str(b)): float(w) for a, b, w in document["edges"]},
            parts={str(name): int(part) for name, part in document["parts"].items()},
            loops=[frozenset(str(s) for s in loop) for loop in document["loops"]],
            diagrams=GraphDiagrams(*(_pairs(pairs) for pairs in document["diagrams"])),
        )
        unusual = document["unusual_since"]
        unusual_since = None if unusual is None else float(unusual)
    except BaselineFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise BaselineFileError("corrupt", f"{path} cannot be read: {err}") from err
    stage.baseline, stage.unusual_since = baseline, unusual_since


def _pairs(pairs: Any) -> np.ndarray:
    array = np.array([[b, math.inf if d is None else d] for b, d in pairs], dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(array[:, 0])):
        raise ValueError("a birth is not a number")
    return array
