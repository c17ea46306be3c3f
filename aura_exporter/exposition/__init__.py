"""Exposition: the snapshot and the exporter's own health as Prometheus metrics, over HTTP."""
