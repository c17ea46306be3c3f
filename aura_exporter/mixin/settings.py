"""Every selector and threshold the shipped rules use, named and explained in one place."""

# Selects the exporter's own scrape target(s), for AuraExporterDown.
EXPORTER_SELECTOR = 'job="aura-exporter"'

# Runbooks: each alert links to its section of docs/runbooks.md.
RUNBOOK_BASE = "https://github.com/aura-exporter/aura-exporter/blob/main/docs/runbooks.md"

# An analysis with no completed cycle for this long is stale (a few intervals of the default 1m).
STALE_AFTER_SECONDS = 600

# Query errors for this long mean the analysis is blind, not that Prometheus hiccuped.
QUERY_ERRORS_FOR = "15m"

# A capacity breach forecast closer than this pages; a forecast must persist before it fires.
BREACH_WITHIN_SECONDS = 7200
BREACH_FOR = "10m"

# Drift this many robust standard deviations above the entity's own norm is a topology change.
DRIFT_ZSCORE = 6
DRIFT_FOR = "15m"
