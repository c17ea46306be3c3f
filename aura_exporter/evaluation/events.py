"""Event-wise detection on a fleet of entities: the measure of data/smd/README.md.

- An alert is a page: a run of consecutive alerting rows, from its first row's time to its last's.
- An incident [first, last] is caught when an alert of its entity overlaps [first − early, last]; an
  hour's warning is the point of prediction, so an alert just before an incident is a catch, not a false one.
- An alert overlapping no such span of its entity is a false alert. Only alerts overlapping the
  entity's scored span (its test rows) count, and false alerts are counted per entity-day of scored span.
- Delay: the first catching alert's start minus the incident's first time (negative: before it began).
- A detector is judged over a curve of thresholds, each entity's the q-quantile of its own scores on
  its learning (train) rows, so no threshold ever sees a test label; recall at a budget of false
  alerts per entity-day is read off that curve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from aura_exporter.backtest.replay import runs
from aura_exporter.windows import EntityKey

Span = tuple[float, float]  # (first, last) times, inclusive
EARLY = 3600.0
DAY = 86400.0
MINUTE = 60.0
# 1 − 10^−x for x = 2, 2.1, …, 5: from one row in a hundred to one in a hundred thousand alerting on
# train, dense on a log scale where page budgets of a few per entity-week live.
DEFAULT_QUANTILES = tuple(1.0 - 10.0 ** -(tenths / 10) for tenths in range(20, 51))
BUDGETS = (0.1, 0.25, 1.0)  # false alerts per entity-day


@dataclass(frozen=True)
class EventFigures:
    incidents: int
    caught: int
    alerts: int
    false_alerts: int
    entity_days: float
    delays_minutes: tuple[float, ...]  # per caught incident

    @property
    def recall(self) -> float:
        return self.caught / self.incidents if self.incidents else float("nan")

    @property
    def false_alerts_per_entity_day(self) -> float:
        return self.false_alerts / self.entity_days if self.entity_days else 0.0

    @property
    def median_delay_minutes(self) -> float:
        return float(np.median(self.delays_minutes)) if self.delays_minutes else float("nan")


@dataclass(frozen=True)
class EntityScores:
    key: EntityKey
    times: np.ndarray  # [T] seconds, increasing
    scores: np.ndarray  # [T] higher is more anomalous; NaN never alerts
    learning: np.ndarray  # [T] bool: rows thresholds may be learned from (train)
    scored: np.ndarray  # [T] bool: rows that are judged (test)


@dataclass(frozen=True)
class CurvePoint:
    quantile: float
    figures: EventFigures


def alert_runs(times: np.ndarray, firing: np.ndarray) -> list[Span]:
    return [(float(times[first]), float(times[last])) for first, last in runs(firing)]


def overlaps(alerts: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """[alerts, spans] bool, for [n, 2] arrays of inclusive (first, last) pairs."""
    return (alerts[:, None, 0] <= spans[None, :, 1]) & (alerts[:, None, 1] >= spans[None, :, 0])


def as_spans(spans: Sequence[Span]) -> np.ndarray:
    return np.asarray(spans, dtype=np.float64).reshape(-1, 2)


def event_figures(alerts: Mapping[EntityKey, Sequence[Span]], incidents: Mapping[EntityKey, Sequence[Span]],
                  scored_spans: Mapping[EntityKey, Span], early: float = EARLY) -> EventFigures:
    """Figures over the entities of `scored_spans`; their alerts outside the scored span are ignored."""
    totals = {"incidents": 0, "caught": 0, "alerts": 0, "false_alerts": 0}
    delays: list[float] = []
    for key, scored in scored_spans.items():
        entity_alerts = as_spans(alerts.get(key, ()))
        entity_alerts = entity_alerts[overlaps(entity_alerts, as_spans([scored]))[:, 0]]
        entity_incidents = as_spans(incidents.get(key, ()))
        windows = entity_incidents - [early, 0.0]
        hits = overlaps(entity_alerts, windows)  # [alerts, incidents]
        caught = hits.any(axis=0)
        first_starts = np.where(hits, entity_alerts[:, :1], np.inf).min(axis=0, initial=np.inf)
        delays.extend(((first_starts - entity_incidents[:, 0])[caught] / MINUTE).tolist())
        totals["incidents"] += len(entity_incidents)
        totals["caught"] += int(caught.sum())
        totals["alerts"] += len(entity_alerts)
        totals["false_alerts"] += int((~hits.any(axis=1)).sum())
    entity_days = sum(last - first for first, last in scored_spans.values()) / DAY
    return EventFigures(**totals, entity_days=entity_days, delays_minutes=tuple(delays))


def learned_thresholds(entity: EntityScores, quantiles: Sequence[float]) -> np.ndarray:
    """[quantiles] thresholds from the entity's finite learning-row scores; +inf (never alert) without any."""
    learned = entity.scores[entity.learning & np.isfinite(entity.scores)]
    return np.quantile(learned, quantiles) if learned.size else np.full(len(quantiles), np.inf)


def scored_span(entity: EntityScores) -> Span:
    times = entity.times[entity.scored]
    return float(times[0]), float(times[-1])


def quantile_curve(entities: Sequence[EntityScores], incidents: Mapping[EntityKey, Sequence[Span]],
                   quantiles: Sequence[float] = DEFAULT_QUANTILES, early: float = EARLY) -> list[CurvePoint]:
    """Event figures at each quantile; an entity alerts on scored rows whose score is strictly above its
    threshold, so a score that never moves never alerts."""
    thresholds = {entity.key: learned_thresholds(entity, quantiles) for entity in entities}
    spans = {entity.key: scored_span(entity) for entity in entities if entity.scored.any()}
    curve = []
    for index, quantile in enumerate(quantiles):
        alerts = {entity.key: alert_runs(entity.times, entity.scored & (entity.scores > thresholds[entity.key][index]))
                  for entity in entities}
        curve.append(CurvePoint(quantile, event_figures(alerts, incidents, spans, early)))
    return curve


def recall_at_budget(curve: Sequence[CurvePoint], budget: float) -> float:
    """The highest recall with at most `budget` false alerts per entity-day; 0 when no threshold is that quiet."""
    return max((point.figures.recall for point in curve if point.figures.false_alerts_per_entity_day <= budget),
               default=0.0)
