"""Typed reading of parsed YAML that collects every problem with its key path."""

from __future__ import annotations

import os
from typing import Any, overload

import yaml

from aura_exporter.durations import parse_duration


class DuplicateKeyLoader(yaml.SafeLoader):
    """PyYAML silently keeps the last of two equal keys; a config must not."""


def _construct_mapping(loader: DuplicateKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:  # `? {}` or `[a]: 1`: YAML allows them, a config has no use for them
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, found {type(key).__name__}", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


DuplicateKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class Reader:
    """Reads typed values out of parsed YAML, collecting every problem with its key path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, allowed: set[str],
                required: frozenset[str] | set[str] = frozenset()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, found {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.fail(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            self.fail(f"{path}.{key}", "required key is missing")
        return value

    def typed(self, value: Any, path: str, kind: type | tuple, default: Any, what: str) -> Any:
        if value is None:
            return default
        if isinstance(value, bool) and kind is not bool:
            self.fail(path, f"expected {what}, found a boolean")
            return default
        if not isinstance(value, kind):
            self.fail(path, f"expected {what}, found {type(value).__name__} {value!r}")
            return default
        return value

    @overload
    def string(self, value: Any, path: str, default: str) -> str: ...
    @overload
    def string(self, value: Any, path: str, default: None = None) -> str | None: ...

    def string(self, value: Any, path: str, default: str | None = None) -> str | None:
        return self.typed(value, path, str, default, "a string")

    def boolean(self, value: Any, path: str, default: bool = False) -> bool:
        return self.typed(value, path, bool, default, "true or false")

    @overload
    def number(self, value: Any, path: str, default: float, low: float | None = None,
               high: float | None = None) -> float: ...
    @overload
    def number(self, value: Any, path: str, default: None, low: float | None = None,
               high: float | None = None) -> float | None: ...

    def number(self, value: Any, path: str, default: float | None, low: float | None = None,
               high: float | None = None) -> float | None:
        number = self.typed(value, path, (int, float), default, "a number")
        if value is not None and number is not None:
            if (low is not None and number < low) or (high is not None and number > high):
                self.fail(path, f"{number} is out of range [{low}, {high}]")
        return None if number is None else float(number)

    def integer(self, value: Any, path: str, default: int, low: int = 1) -> int:
        number = self.typed(value, path, int, default, "a whole number")
        if number < low:
            self.fail(path, f"must be at least {low}, found {number}")
        return number

    @overload
    def duration(self, value: Any, path: str, default: float, zero: bool = False) -> float: ...
    @overload
    def duration(self, value: Any, path: str, default: None, zero: bool = False) -> float | None: ...

    def duration(self, value: Any, path: str, default: float | None, zero: bool = False) -> float | None:
        """Seconds from a Prometheus duration; 0s only where `zero` (which then means off)."""
        if value is None:
            return default
        if value == 0 and not isinstance(value, bool) or value == "0":  # Prometheus reads a bare 0 as 0s
            value = "0s"
        try:
            seconds = parse_duration(str(value))
        except ValueError as err:
            self.fail(path, str(err))
            return default
        if seconds < 0 or (seconds == 0 and not zero):
            self.fail(path, "must be longer than 0s")
        return seconds

    def readable_file(self, value: Any, path: str) -> str | None:
        name = self.string(value, path)
        if name is not None and not os.access(name, os.R_OK):
            self.fail(path, f"cannot read file {name!r}")
        return name
