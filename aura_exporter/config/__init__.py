"""Configuration: typed objects (model), typed YAML reading (reader), validation (load)."""

from aura_exporter.config.load import load_config, parse_config
from aura_exporter.config.model import (
    GRAPH_FEATURE,
    GRAPH_WEIGHTS,
    MIN_WINDOW_STEPS,
    RESERVED_LABELS,
    ROLES,
    Analysis,
    AnyAnalysis,
    BaselineConfig,
    BasicAuth,
    Config,
    ConfigError,
    CouncilConfig,
    Feature,
    ForecastConfig,
    GraphAnalysis,
    GraphConfig,
    GraphLink,
    KubernetesConfig,
    KubernetesMapping,
    PrometheusConfig,
    TLSConfig,
    TopologyConfig,
)

__all__ = [
    "MIN_WINDOW_STEPS", "RESERVED_LABELS", "ROLES", "Analysis", "AnyAnalysis", "BaselineConfig", "BasicAuth", "Config",
    "ConfigError", "CouncilConfig", "Feature", "ForecastConfig",
    "GRAPH_FEATURE", "GRAPH_WEIGHTS", "GraphAnalysis", "GraphConfig", "GraphLink",
    "KubernetesConfig", "KubernetesMapping", "PrometheusConfig", "TLSConfig", "TopologyConfig",
    "load_config", "parse_config",
]
