"""Every selector and threshold the shipped rules use, named and explained in one place."""

from aura_exporter.config.model import CouncilConfig

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

# Where on-call people reach the exporter: alerts link to the entity's explanation in its API.
AURA_URL = "http://aura-exporter:10470"

# The council's decisions must last this long. The council has already confirmed them (confirm_cycles)
# and holds them steady (hysteresis): this only rides out one rule evaluation (Prometheus' default 1m).
# A longer `for:` confirms a second time, a wait the page budget does not count: at 5m, one confirmed
# 5-minute cycle never paged, and the SMD fleet paged half its budget and caught a third fewer incidents.
COUNCIL_FOR = "1m"

# A critical decision is a predicted failure (not only a present anomaly) when some feature's
# forecast reaches its limit with at least this probability.
FAILURE_BREACH_PROBABILITY = 0.5

# An entity further than this many cluster thresholds from the fleet's majority, in a cluster of
# two or more (a lone outlier is an anomaly, not a partition), is cut off from its peers.
PARTITION_THRESHOLDS = 2
PARTITION_FOR = "3m"

# Service graphs (analyses of kind graph): a new request loop, services cut off from the main part and
# a new dependency must last this long (a few cycles: one odd minute of traffic is not a change).
GRAPH_CYCLE_FOR = "5m"
GRAPH_PARTITION_FOR = "3m"
GRAPH_NEW_DEPENDENCY_FOR = "10m"

# The council's thresholds as shipped, for colours.
COUNCIL_WARN = CouncilConfig.warn
COUNCIL_QUORUM = CouncilConfig.quorum

# Dashboards: the entity label the drill-down selects by (set it to your analyses' entity label,
# e.g. pod), their uids (links between them), how many entities "top" panels show, and the forecast
# horizon the drill-down plots (one of the analyses' forecast horizons).
ENTITY_LABEL = "instance"
FLEET_DASHBOARD_UID = "aura-fleet"
ENTITY_DASHBOARD_UID = "aura-entity"
GRAPH_DASHBOARD_UID = "aura-service-graph"
TOP_ENTITIES = 20
DASHBOARD_HORIZON = "1h"
