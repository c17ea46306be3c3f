"""Labeled incidents: NAB's windows JSON, or a YAML list a team writes from its postmortems.

NAB: `{"<category>/<file>.csv": [["2014-02-19 10:50:00.000000", "2014-02-20 03:30:00.000000"], ...]}`;
the entity is the file's path without `.csv`.

YAML:
    incidents:
      - entity: {instance: "db-1:9100"}     # the entity's labels (a subset is enough)
        start: 2026-11-03T14:20:00Z         # when it began to go wrong
        end: 2026-11-03T16:00:00Z           # optional; default start + 1h
        name: disk filled up                # optional
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from aura_exporter.backtest.files import parse_time

DEFAULT_LENGTH = 3600.0


class LabelError(Exception):
    pass


@dataclass(frozen=True)
class Incident:
    entity: dict[str, str]
    start: float
    end: float
    name: str = ""

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.entity.items())


def load_labels(path: Path, entity_label: str = "series") -> list[Incident]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LabelError(f"{path}: cannot read: {err}") from err
    if path.suffix == ".json":
        return _nab_windows(path, text, entity_label)
    return _incident_list(path, text)


def _nab_windows(path: Path, text: str, entity_label: str) -> list[Incident]:
    try:
        document = json.loads(text)
        return [Incident({entity_label: name.removesuffix(".csv")}, parse_time(start), parse_time(end))
                for name, windows in document.items() for start, end in windows]
    except (ValueError, TypeError, AttributeError) as err:
        raise LabelError(f"{path}: not NAB windows JSON ({err})") from err


def _incident_list(path: Path, text: str) -> list[Incident]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LabelError(f"{path}: not YAML: {err}") from err
    items = document.get("incidents") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise LabelError(f"{path}: expected a mapping with an `incidents` list")
    incidents = []
    for number, item in enumerate(items):
        where = f"{path}: incidents[{number}]"
        if not isinstance(item, dict) or not isinstance(item.get("entity"), dict) or "start" not in item:
            raise LabelError(f"{where}: needs `entity` (a label mapping) and `start`")
        try:
            start = _moment(item["start"])
            end = _moment(item["end"]) if item.get("end") is not None else start + DEFAULT_LENGTH
        except ValueError as err:
            raise LabelError(f"{where}: {err}") from err
        if end <= start:
            raise LabelError(f"{where}: `end` must come after `start`")
        incidents.append(Incident({str(k): str(v) for k, v in item["entity"].items()}, start, end,
                                  str(item.get("name", ""))))
    return incidents


def _moment(value) -> float:
    if hasattr(value, "timestamp"):  # YAML reads unquoted ISO times as datetimes
        return parse_time(value.isoformat())
    return parse_time(str(value))
