"""Alerting rules as code (in the manner of node-mixin): settings in one place, YAML generated.

`python -m aura_exporter.mixin` (or `make rules`) writes rules/aura-alerts.yml; a test
regenerates it and fails on any difference.
"""
