"""AURA exporter: a failure-prediction sidecar for Prometheus."""

__version__ = "0.1.0"
