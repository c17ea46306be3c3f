"""Where series come from: any PromQL API, or the embedded replay fleet."""

from aura_exporter.sources.base import QueryError, RangeResult, Series, Source

__all__ = ["QueryError", "RangeResult", "Series", "Source"]
