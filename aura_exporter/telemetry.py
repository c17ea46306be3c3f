"""The exporter's own health: live metrics, updated as things happen, rendered on every scrape."""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from aura_exporter import __version__
from aura_exporter.forecast.checkpoint import REASONS as CHECKPOINT_REASONS
from aura_exporter.sources.base import ERROR_REASONS
from aura_exporter.sources.shard import WHOLE, Shard
from aura_exporter.topology.baseline_file import REASONS as BASELINE_REASONS

STAGES = ("query", "windows", "topology", "forecast", "council", "cycle")
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _library_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class SelfMetrics:
    def __init__(self, analyses: list[str], shard: Shard = WHOLE):
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.duration = Histogram(
            "aura_analysis_duration_seconds", "Duration of each stage of an analysis cycle.",
            ["analysis", "stage"], buckets=_BUCKETS, registry=self.registry,
        )
        self.query_errors = Counter(
            "aura_query_errors_total", "PromQL queries that failed, by reason.",
            ["analysis", "reason"], registry=self.registry,
        )
        self.cycles = Counter(
            "aura_analysis_cycles_total", "Analysis cycles run, by result.",
            ["analysis", "result"], registry=self.registry,
        )
        self.last_success = Gauge(
            "aura_analysis_last_success_timestamp_seconds",
            "Unix time of the last analysis cycle that completed.", ["analysis"], registry=self.registry,
        )
        self.checkpoint_errors = Counter(
            "aura_checkpoint_errors_total", "Forecaster checkpoints that could not be used, by reason.",
            ["analysis", "reason"], registry=self.registry,
        )
        self.baseline_errors = Counter(
            "aura_baseline_errors_total", "Baseline files that could not be read or written, by reason.",
            ["analysis", "reason"], registry=self.registry,
        )
        self.trainings = Counter(
            "aura_model_trainings_total", "Forecaster trainings and fine-tunings, by result.",
            ["analysis", "result"], registry=self.registry,
        )
        self.model_trained = Gauge(
            "aura_model_last_trained_timestamp_seconds", "Unix time the forecaster in use was trained.",
            ["analysis"], registry=self.registry,
        )
        build = Gauge(
            "aura_exporter_build_info", "Build information; the value is always 1.",
            ["version", "python_version", "giotto_tda_version"], registry=self.registry,
        )
        build.labels(__version__, platform.python_version(), _library_version("giotto-tda")).set(1)
        self.kubernetes_errors = Counter(
            "aura_kubernetes_errors_total", "Readings of the Kubernetes API (topology enrichment) that failed.",
            registry=self.registry,
        )
        Gauge("aura_shard_info", "This replica's shard of the entities; the value is always 1.",
              ["shard", "shard_count"], registry=self.registry).labels(str(shard.index), str(shard.count)).set(1)
        self.limit_hits = Counter(
            "aura_cardinality_limit_hits_total",
            "Cycles that hit a cardinality cap (max_entities, max_series, graph.max_services).",
            ["analysis", "limit"], registry=self.registry,
        )
        self.reload_successful = Gauge(
            "aura_config_last_reload_successful", "Whether the last configuration reload succeeded (1) or not (0).",
            registry=self.registry,
        )
        self.reload_successful.set(1)
        self.reload_time = Gauge(
            "aura_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load.",
            registry=self.registry,
        )
        self.reload_time.set_to_current_time()
        for name in analyses:
            self.prepare(name)

    def config_reloaded(self, successful: bool) -> None:
        self.reload_successful.set(1 if successful else 0)
        if successful:
            self.reload_time.set_to_current_time()

    def prepare(self, name: str) -> None:
        """Create an analysis' series up front, so that rate() and absent() behave from its start."""
        for reason in ERROR_REASONS:
            self.query_errors.labels(name, reason)
        for result in ("success", "failure"):
            self.cycles.labels(name, result)
            self.trainings.labels(name, result)
        for stage in STAGES:
            self.duration.labels(name, stage)
        for reason in CHECKPOINT_REASONS:
            self.checkpoint_errors.labels(name, reason)
        for reason in BASELINE_REASONS:
            self.baseline_errors.labels(name, reason)
        for limit in ("entities", "series", "services"):
            self.limit_hits.labels(name, limit)
