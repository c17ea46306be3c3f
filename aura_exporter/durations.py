"""Prometheus-style durations ("1h30m", "15s", "500ms") to and from seconds."""

from __future__ import annotations

import re

_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))
# Same grammar as Prometheus' model.ParseDuration: units in descending order, each at most once.
_PATTERN = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration; ValueError with the expected form otherwise."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 15s, 5m, 1h30m)")
    return float(sum(int(n) * unit for n, (_, unit) in zip(match.groups(), _UNITS, strict=True) if n))


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for a whole number of milliseconds."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for suffix, unit in _UNITS:
        unit_ms = round(unit * 1000)
        count, millis = divmod(millis, unit_ms)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)
