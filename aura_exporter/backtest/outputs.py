"""What a backtest writes: per-row scores (CSV), the alerts that would have fired (JSON), NAB-format
results per file, and run.json (what was run, for `evaluate` and for people).

What is scored against incidents is the pages, not the rows: a row's `alert_score` is, at the row
where a warning would have started firing (the rules' `for:` held), the highest risk since its
decision was taken, and 0 elsewhere. NAB counts every row at or over its threshold as one more
detection; an on-call team counts pages, and a risk that stays high for an hour is one page, not
twelve."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aura_exporter.backtest.replay import Alert, Trace
from aura_exporter.windows import EntityKey


@dataclass(frozen=True)
class Rows:
    """The rows an entity is scored at: its own timestamps and where they fall on the replay's timeline."""

    times: np.ndarray  # as the data had them (Unix seconds)
    timeline: np.ndarray  # shifted onto the replay's timeline
    values: np.ndarray  # the first feature's value, for plots and NAB's files
    learning: np.ndarray  # [rows] bool: the rows learned from (trained on), before those that are judged

    @property
    def learning_end(self) -> float:
        """Where learning ends on the replay's timeline: the first row not learned from."""
        judged = np.flatnonzero(~self.learning)
        return float(self.timeline[judged[0]]) if judged.size else float("inf")


@dataclass(frozen=True)
class Scored:
    """Per-row figures of one entity: each row carries the latest cycle at or before it (a gauge's
    value when Prometheus would have scraped it); before the first cycle, risk 0 and the rest NaN."""

    rows: Rows
    risk: np.ndarray
    decision: np.ndarray
    agent_scores: np.ndarray  # [rows, agents]
    drift_zscore: np.ndarray
    residual_zscore: np.ndarray
    ready: np.ndarray
    usual_per_week: np.ndarray


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def score_rows(trace: Trace, key: EntityKey, rows: Rows) -> Scored:
    entity = trace.entities.get(key)
    agents = len(trace.agents)
    if entity is None or not entity.times:
        nothing = np.full(len(rows.times), np.nan)
        return Scored(rows, np.zeros(len(rows.times)), np.zeros(len(rows.times), dtype=int),
                      np.full((len(rows.times), agents), np.nan), nothing, nothing, np.zeros(len(rows.times), bool),
                      nothing)
    latest = np.searchsorted(np.array(entity.times), rows.timeline + 1e-6, side="right") - 1
    known = latest >= 0
    at = np.clip(latest, 0, None)

    def pick(values, missing):
        picked = np.asarray(values)[at]
        return np.where(known if picked.ndim == 1 else known[:, None], picked, missing)

    return Scored(rows, pick(entity.risk, 0.0), pick(entity.decision, 0).astype(int),
                  pick(np.stack(entity.agent_scores), np.nan), pick(entity.drift_zscore, np.nan),
                  pick(entity.residual_zscore, np.nan), pick(entity.ready, False).astype(bool),
                  pick(entity.usual_per_week, np.nan))


def page_scores(scored: Scored, warnings: list[tuple[float, float]]) -> np.ndarray:
    """[rows] at the first row at or after each warning's start (on the replay's timeline), the highest risk
    from its decision on; 0 elsewhere."""
    timeline = scored.rows.timeline
    spans = [(int(np.searchsorted(timeline, decided - 1e-6)), int(np.searchsorted(timeline, start - 1e-6)))
             for decided, start in warnings]
    return pages_at(scored.risk, spans)


def pages_at(scores: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """[rows] at the last row of each (decision, page) span of row indices, the span's highest score (a page
    carries the highest risk since its decision); 0 elsewhere. Spans that end past the rows never paged."""
    paged = np.zeros(len(scores))
    for first, row in spans:
        if row < len(scores):
            paged[row] = scores[first:row + 1].max()
    return paged


def warnings_of(found: list[Alert], label_names: tuple[str, ...]) -> dict[EntityKey, list[tuple[float, float]]]:
    """When each entity's warnings were decided and started firing (a critical alert is inside a warning)."""
    warnings: dict[EntityKey, list[tuple[float, float]]] = {}
    for alert in found:
        if alert.severity == "warning":
            key = tuple(alert.entity[name] for name in label_names)
            warnings.setdefault(key, []).append((alert.decided_at, alert.start))
    return warnings


def write_scores(path: Path, trace: Trace, scored: dict[EntityKey, Scored], pages: dict[EntityKey, np.ndarray]) -> None:
    labels = list(trace.analysis.entity_labels)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["time", *labels, "value", "risk", "alert_score", "decision",
                      *(f"{a}_score" for a in trace.agents), "drift_zscore", "residual_zscore", "model_ready",
                      "learning", "usual_per_week"])
        for key, s in scored.items():
            for i, moment in enumerate(s.rows.times):
                out.writerow([iso(moment), *key, _number(s.rows.values[i]), f"{s.risk[i]:.6f}",
                              f"{pages[key][i]:.6f}", int(s.decision[i]), *(_number(v) for v in s.agent_scores[i]),
                              _number(s.drift_zscore[i]), _number(s.residual_zscore[i]), int(s.ready[i]),
                              int(s.rows.learning[i]), _number(s.usual_per_week[i])])


def _number(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.6g}"


def write_alerts(path: Path, found: list[Alert], shifts: dict[EntityKey, float], label_names: tuple[str, ...]) -> None:
    """Alerts with the entity's own times (the replay timeline's shift undone)."""
    documents = []
    for alert in found:
        shift = shifts.get(tuple(alert.entity[name] for name in label_names), 0.0)
        document = asdict(alert)
        for name in ("start", "end", "decided_at"):
            document[name] = None if document[name] is None else iso(document[name] - shift)
        documents.append(document)
    path.write_text(json.dumps({"alerts": documents}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def safe_path(name: str) -> Path:
    """An entity name as a relative path that stays inside the output folder, whatever the labels say."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", part).lstrip(".") or "_" for part in name.split("/") if part]
    return Path(*parts) if parts else Path("_")


def write_nab_results(folder: Path, detector: str, scored: dict[EntityKey, Scored],
                      labelled: dict[EntityKey, np.ndarray], pages: dict[EntityKey, np.ndarray]) -> None:
    """NAB's results layout, `<detector>/<category>/<detector>_<file>.csv` with
    `timestamp,value,anomaly_score,label` (the anomaly score is the page score), so that NAB's own
    scorer can check ours."""
    for key, s in scored.items():
        relative = safe_path(key[0])
        target = folder / detector / relative.parent / f"{detector}_{relative.name}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        label = labelled.get(key, np.zeros(len(s.rows.times), dtype=int))
        with open(target, "w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["timestamp", "value", "anomaly_score", "label"])
            for i, moment in enumerate(s.rows.times):
                out.writerow([dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                              _number(s.rows.values[i]), f"{pages[key][i]:.6f}", int(label[i])])
