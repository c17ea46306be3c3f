"""The analyses' status as the HTTP layer shows it (/-/ready, /api/v1/status)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType


@dataclass(frozen=True)
class AnalysesStatus:
    """Which analyses run, which have served a complete cycle, and each one's last error: replaced whole,
    never changed in place, so a handler reads one consistent version."""

    names: tuple[str, ...] = ()
    succeeded: frozenset[str] = frozenset()  # analyses with at least one complete cycle served
    last_errors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def running(self, names: Sequence[str]) -> AnalysesStatus:
        """The status of a new set of analyses (after a reload): what is known of those that remain."""
        return AnalysesStatus(tuple(names), self.succeeded & set(names),
                              MappingProxyType({n: e for n, e in self.last_errors.items() if n in names}))

    def failed(self, name: str, error: str) -> AnalysesStatus:
        return replace(self, last_errors=MappingProxyType({**self.last_errors, name: error}))

    def served(self, name: str) -> AnalysesStatus:
        """`name`'s result is on /metrics and in the API: it is ready, and its last error is history."""
        return AnalysesStatus(self.names, self.succeeded | {name},
                              MappingProxyType({n: e for n, e in self.last_errors.items() if n != name}))

    def not_ready(self) -> list[str]:
        return [name for name in self.names if name not in self.succeeded]
