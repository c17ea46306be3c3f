"""Scoring a backtest against incidents: NAB's profiles, and the KPIs an on-call team asks about.

- NAB: each entity's per-row anomaly scores and its incidents as windows (rows from the first at or
  after an incident's start to the last at or before its end), scored by aura_exporter.evaluation.nab.
- Alerts: runs of rows whose score reaches the detector's threshold (the standard profile's unless
  told otherwise); an alert starts at the run's first row.
- Recall: incidents with an alert that starts between `lead` before the incident and its end.
- False alerts: alerts that start outside every such span of their entity; per day of data and as a
  share of all alerts.
- Lead time: the incident's anomaly time minus the first catching alert's start (positive: before).
  The anomaly time is the incident's start for a team's list, and the window's middle for NAB's
  windows, which NAB centred on the labeled anomaly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aura_exporter.backtest.labels import Incident
from aura_exporter.evaluation.nab import PROFILES, CorpusScore, LabeledSeries, score_corpus

DAY = 86400.0


@dataclass(frozen=True)
class ScoredEntity:
    labels: dict[str, str]
    times: np.ndarray
    scores: np.ndarray  # [0, 1]


@dataclass(frozen=True)
class Kpis:
    incidents: int
    caught: int
    alerts: int
    false_alerts: int
    days: float
    leads_hours: tuple[float, ...]

    @property
    def recall(self) -> float:
        return self.caught / self.incidents if self.incidents else float("nan")

    @property
    def false_alert_share(self) -> float:
        return self.false_alerts / self.alerts if self.alerts else 0.0

    @property
    def false_alerts_per_day(self) -> float:
        return self.false_alerts / self.days if self.days else 0.0

    @property
    def median_lead_hours(self) -> float:
        return float(np.median(self.leads_hours)) if self.leads_hours else float("nan")


def incidents_of(entity: ScoredEntity, incidents: Sequence[Incident]) -> list[Incident]:
    return sorted((i for i in incidents if i.matches(entity.labels)), key=lambda i: i.start)


def windows_of(entity: ScoredEntity, incidents: Sequence[Incident]) -> tuple[tuple[int, int], ...]:
    windows = []
    for incident in incidents_of(entity, incidents):
        first = int(np.searchsorted(entity.times, incident.start, side="left"))
        last = int(np.searchsorted(entity.times, incident.end, side="right")) - 1
        if first <= last:
            windows.append((first, last))
    return tuple(windows)


def nab_scores(entities: Sequence[ScoredEntity], incidents: Sequence[Incident],
               thresholds: dict[str, float] | None = None) -> dict[str, CorpusScore]:
    """Each profile's score, at its best threshold over these entities or at the one given."""
    corpus = [LabeledSeries(str(e.labels), e.scores, windows_of(e, incidents)) for e in entities]
    return {profile.name: score_corpus(corpus, profile, (thresholds or {}).get(profile.name))
            for profile in PROFILES}


def alert_starts(entity: ScoredEntity, threshold: float) -> np.ndarray:
    above = entity.scores >= threshold
    rising = above & ~np.concatenate([[False], above[:-1]])
    return entity.times[rising]


def kpis(entities: Sequence[ScoredEntity], incidents: Sequence[Incident], threshold: float, lead: float,
         anomaly_at_middle: bool) -> Kpis:
    total = caught = alerts = false_alerts = 0
    days = 0.0
    leads: list[float] = []
    for entity in entities:
        mine = incidents_of(entity, incidents)
        starts = alert_starts(entity, threshold)
        days += (entity.times[-1] - entity.times[0]) / DAY if len(entity.times) > 1 else 0.0
        alerts += len(starts)
        covered = np.zeros(len(starts), dtype=bool)
        for incident in mine:
            inside = (starts >= incident.start - lead) & (starts <= incident.end)
            covered |= inside
            total += 1
            if inside.any():
                caught += 1
                anomaly = (incident.start + incident.end) / 2 if anomaly_at_middle else incident.start
                leads.append((anomaly - float(starts[inside][0])) / 3600.0)
        false_alerts += int(np.sum(~covered))
    return Kpis(total, caught, alerts, false_alerts, days, tuple(leads))
