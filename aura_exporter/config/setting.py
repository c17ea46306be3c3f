"""One declaration per setting: its YAML key, kind, bounds and help, beside its default in the model.

The model's dataclass fields carry a `Setting` in their metadata (`setting(...)`). From it the reader
takes each section's allowed keys and reads its plain values (`read_section`), `check-config` its
messages, and the README its configuration reference (config/reference.py), so adding a setting is one
edit. Settings whose reading needs more than a kind and bounds (lists, nested sections, values checked
against each other) are declared with kind "custom" and read by their own function in config/load.py.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from aura_exporter.config.reader import Reader

KINDS = ("duration", "number", "integer", "boolean", "string", "choice", "file", "custom")
METADATA_KEY = "aura_setting"


@dataclass(frozen=True)
class Setting:
    help: str
    kind: str
    key: str | None = None  # its YAML key, when not the field's name
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    zero: bool = False  # durations: 0s is allowed (and means off)
    example: str | None = None  # shown in the reference instead of the default (required and optional keys)
    items: str | None = None  # custom lists: the kind of their items, for the reference (duration, integer, string)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown setting kind {self.kind!r}")


def setting(default: Any, help: str, kind: str, **options: Any) -> Any:
    """A dataclass field with its default and its declaration; `default=MISSING` for required keys."""
    declared = {METADATA_KEY: Setting(help=help, kind=kind, **options)}
    if default is MISSING:
        return field(metadata=declared)
    return field(default=default, metadata=declared)


def declared(cls: type) -> list[tuple[Field, Setting]]:
    """The fields of dataclass `cls` that are settings, in declaration order."""
    return [(f, f.metadata[METADATA_KEY]) for f in fields(cls) if METADATA_KEY in f.metadata]


def key_of(item: tuple[Field, Setting]) -> str:
    return item[1].key or item[0].name


def allowed_keys(cls: type, extra: tuple[str, ...] = ()) -> set[str]:
    return {key_of(item) for item in declared(cls)} | set(extra)


def read_value(reader: Reader, spec: Setting, value: Any, path: str, default: Any) -> Any:
    """One plain setting read by its kind and bounds, every problem collected by `reader`."""
    if spec.kind == "duration":
        return reader.duration(value, path, default, zero=spec.zero)
    if spec.kind == "number":
        return reader.number(value, path, default, spec.low, spec.high)
    if spec.kind == "integer":
        return reader.integer(value, path, default, low=1 if spec.low is None else int(spec.low))
    if spec.kind == "boolean":
        return reader.boolean(value, path, default)
    if spec.kind == "file":
        return reader.readable_file(value, path)
    text = reader.string(value, path, default)
    if spec.kind == "choice" and text is not None and text not in spec.choices:
        reader.fail(path, f"{text!r} is not one of {', '.join(spec.choices)}")
    return text


def required_keys(cls: type, defaulted: tuple[str, ...] = ()) -> set[str]:
    """Keys of settings without a default, but those whose default the reader derives from others."""
    return {key_of(item) for item in declared(cls) if item[0].default is MISSING and item[0].name not in defaulted}


def read_section(reader: Reader, node: dict, path: str, cls: type) -> dict[str, Any]:
    """The plain settings of section `cls` read from `node`: field name -> value (None for a required one
    that is missing). Custom kinds are left to the caller, as are defaults that depend on other settings
    (an interval defaults to its step): the caller applies them when the key is absent."""
    values = {}
    for item in declared(cls):
        spec_field, spec = item
        if spec.kind != "custom":
            default = None if spec_field.default is MISSING else spec_field.default
            values[spec_field.name] = read_value(reader, spec, node.get(key_of(item)), f"{path}.{key_of(item)}",
                                                 default)
    return values
