"""The configuration's typed, frozen objects: what every stage after the edge reads."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field

from aura_exporter.config.setting import setting

ROLES = ("network", "resources", "security", "performance")
DIRECTIONS = ("up", "down", "both")
# Labels the exporter adds itself; an entity label of the same name would be ambiguous.
RESERVED_LABELS = frozenset(
    {"analysis", "homology_dimension", "feature", "horizon", "agent", "stage", "reason", "decision",
     "le", "quantile", "shard"}
)
MIN_WINDOW_STEPS = 8  # fewer points than this carry no usable shape
NOVELTY_MIN_HISTORY = 10  # past points a novelty needs before it means anything (topology/novelty.py)


def embedding_span(dimension: int, delay: int) -> int:
    """Steps one Takens point covers: a step and its `dimension − 1` predecessors `delay` steps apart."""
    return (dimension - 1) * delay + 1


class ConfigError(Exception):
    """All problems of one configuration file, each as 'path: message'."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class TLSConfig:
    ca_file: str | None = setting(None, "verify the server with this CA", "file", example="ca.pem")
    cert_file: str | None = setting(None, "client certificate (with key_file)", "file", example="client.pem")
    key_file: str | None = setting(None, "its key", "file", example="client.key")
    server_name: str | None = setting(None, "the name the server's certificate must carry", "string",
                                      example="prometheus")
    insecure_skip_verify: bool = setting(False, "true: accept any certificate (tests only)", "boolean")


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class PrometheusConfig:
    url: str = setting(MISSING, "any PromQL API; a path prefix is kept (/prometheus)", "custom",
                       example="http://prometheus:9090")
    timeout: float = setting(30.0, "per request", "duration")
    bearer_token_file: str | None = setting(None, "re-read on every request (rotated tokens)", "file",
                                            example="/var/run/secrets/token")
    basic_auth: BasicAuth | None = setting(None, "or password: ...; at most one of this and bearer_token_file",
                                           "custom", example="{username: u, password_file: /etc/aura/pw}")
    tls: TLSConfig = setting(TLSConfig(), "", "custom", key="tls_config")
    headers: tuple[tuple[str, str], ...] = setting((), "extra headers, e.g. the Mimir/Cortex tenant", "custom",
                                                   example="{X-Scope-OrgID: team-a}")
    max_concurrency: int = setting(4, "requests in flight", "integer")
    retries: int = setting(3, "on 5xx, 429, timeouts and connection errors; never on other 4xx", "integer", low=0)
    max_points_per_query: int = setting(11000, "points per series in one request; longer ranges are split "
                                        "(Prometheus refuses more than 11,000)", "integer", low=2)


@dataclass(frozen=True)
class Feature:
    name: str  # its key in `features`
    query: str = setting(MISSING, "PromQL returning at most one series per entity (aggregate by the entity labels)",
                         "custom")
    role: str = setting(MISSING, "the agent that weighs it", "choice", choices=ROLES)
    limit: float | None = setting(None, "the value it must not reach: forecasts give a time to breach", "number")
    direction: str = setting("both", "which deviations count as risk (default: up with a limit, else both)",
                             "choice", choices=DIRECTIONS)
    min_deviation: float = setting(0.0, "smaller deviations (in the feature's units) never count", "number", low=0.0)


@dataclass(frozen=True)
class BaselineConfig:
    """How each entity's reference window is learned; see the README's 'Baselines' section."""

    refresh_interval: float = setting(6 * 3600.0, "the reference is refreshed this often while the entity looks normal",
                                      "duration")
    min_history: int = setting(10, "drift samples needed before a z-score is given (warm-up)", "integer")
    history: int = setting(240, "drift samples kept for the z-score", "integer", low=2)
    learn_below_zscore: float = setting(3.0, "windows this unusual never become or feed the baseline", "number",
                                        low=0.0)
    forget_after: float = setting(3600.0, "entities unseen this long lose their baseline", "duration")
    save_interval: float = setting(300.0, "baselines are written to --storage.path this often and on shutdown",
                                   "duration")
    learn_from_history: float = setting(2 * 86400.0, "with nothing saved, learn from this much Prometheus history "
                                        "at start-up (0s: off)", "duration", zero=True)


@dataclass(frozen=True)
class TopologyConfig:
    homology_dimensions: tuple[int, ...] = setting((0, 1), "add 2 for voids (slower)", "custom", items="integer")
    embedding_dimension: int = setting(1, ">1: Takens delay embedding of each window (for few features)", "integer")
    embedding_delay: int = setting(1, "steps between the delayed copies", "integer")
    max_points: int = setting(0, ">0: average consecutive points down to this many (faster, coarser)", "custom")
    novelty_history: int = setting(0, ">0: judge each step against this many past ones (topology/novelty.py)",
                                   "custom")
    novelty_scales: tuple[int, ...] = setting((1,), "steps averaged per point coordinate; one history per scale",
                                              "custom", items="integer")
    novelty_memory: float = setting(30 * 86400.0, "how long novelty remembers how new an entity's steps usually are",
                                    "duration")
    novelty_warm_up: float = setting(1000 * 60.0, "novelty and records say nothing for this long after an entity "
                                     "is first seen", "duration")
    noise_factor: float = setting(3.0, "features shorter than this x the median H0 bar are noise", "number", low=0.0)
    min_persistence: float = setting(0.5, "...and never shorter than this, in robust-scaled units", "number",
                                     low=0.0)


@dataclass(frozen=True)
class ForecastConfig:
    """The liquid-network forecaster of one analysis; see the README's 'Forecasts' section."""

    enabled: bool = setting(True, "false: no forecaster (no forecasts, surprise or breach evidence)", "boolean")
    horizons: tuple[float, ...] = setting((900.0, 3600.0, 7200.0, 14400.0), "exported as aura_forecast{horizon=...}",
                                          "custom", items="duration")
    context: float = setting(14400.0, "how far back the forecaster looks (default: the longest horizon)",
                             "duration")
    input_steps: int = setting(60, "context points, context/input_steps apart (a whole number of steps)", "integer",
                               low=4)
    history: float = setting(3 * 86400.0, "history to train on; at least 4 x (context + longest horizon)",
                             "duration")
    retrain_interval: float = setting(86400.0, "fine-tune from the current weights this often; 0s never", "duration",
                                      zero=True)
    device: str = setting("auto", "auto (CUDA when present) | cpu | cuda", "choice", choices=("auto", "cpu", "cuda"))
    units: int = setting(64, "CfC units", "integer", low=4)
    max_epochs: int = setting(40, "training stops after this many epochs...", "integer")
    max_train_time: float = setting(600.0, "...or this long", "duration")
    max_samples: int = setting(20000, "training windows drawn from the history", "integer", low=64)
    trend_share: float = setting(0.25, "share of training samples given a synthetic steady trend", "number",
                                 low=0.0, high=1.0)
    seasons: tuple[float, ...] = setting((86400.0, 604800.0), "lags it also sees: the same time yesterday and a "
                                         "week ago (each longer than the longest horizon; unset: those of the default "
                                         "that are; [] none)", "custom", items="duration")

    @property
    def context_step(self) -> float:
        return self.context / self.input_steps


# The kinds of evidence the built-in agents weigh (council/evidence.py); `council.evidence` picks among them.
EVIDENCE_KINDS = ("level", "state", "surprise", "novelty", "record", "breach", "drift", "isolation", "dependency_loop",
                  "partition", "new_caller")
# Drift and surprise are exported, and weighed where asked for, but do not page by default: drift's z-score against
# the entity's own recent drift is heavy-tailed, and on SMD it cost recall and doubled the false pages at the same
# budget; a forecast's residuals are heavy-tailed too (one badly forecast feature of many is a surprise every hour),
# and on SMD, with the forecaster on, surprise halved the incidents caught at every budget (README, 'Council').
DEFAULT_EVIDENCE = tuple(kind for kind in EVIDENCE_KINDS if kind not in ("drift", "surprise"))
BUDGET_SCOPES = ("fleet", "entity")


@dataclass(frozen=True)
class CouncilConfig:
    """How the agents' scores become a risk and a decision; see the README's 'Council' section."""

    quorum: float = setting(0.75, "combined risk for critical", "number", low=0.0)
    warn: float = setting(0.4, "combined risk for warn; an agent votes when its score reaches it", "number", low=0.0)
    sigmas: float = setting(5.0, "deviation (robust standard deviations) at which evidence scores 0.5", "number",
                            low=0.5)
    confirm_cycles: int = setting(2, "a decision is taken after this many cycles at its threshold...", "integer")
    hysteresis: float = setting(0.15, "...and left once the risk is this far below it...", "number", low=0.0)
    clear_cycles: int = setting(3, "...for this many cycles", "integer")
    peers: bool = setting(True, "false: entities are unrelated, compare each with its own baseline", "boolean")
    calibrate: bool = setting(False, "true: risk = how unusual this risk is for this entity (council/calibration.py)",
                              "boolean")
    evidence: tuple[str, ...] = setting(DEFAULT_EVIDENCE, "the kinds of evidence the agents weigh (default: all "
                                        "but drift and surprise)", "custom", items="string")
    false_pages_per_week: float = setting(1.0, "learn the thresholds so that an entity pages this often "
                                          "on normal behaviour (0: off, fixed thresholds; calibrate: true turns it off "
                                          "too)",
                                          "number", low=0.0)
    budget_scope: str = setting("fleet", "fleet: the thresholds are learned from all the analysis' entities together, "
                                "so that each pages that often on average, none more than 4 times as often "
                                "(README, 'Page budget'); entity: from each entity's own history alone", "choice",
                                choices=BUDGET_SCOPES)


@dataclass(frozen=True)
class KubernetesMapping:
    """How an analysis' entity labels name a Kubernetes object: a pod (namespace and name) or a node."""

    kind: str  # pod | node
    name_label: str
    namespace_label: str | None = None  # pods only


@dataclass(frozen=True)
class KubernetesConfig:
    """Optional topology enrichment from the Kubernetes API; see the README's 'Kubernetes'."""

    enabled: bool = setting(False, "list nodes, pods and replica sets: explanations name an entity's node and owner",
                            "boolean")
    kubeconfig: str | None = setting(None, "default: the in-cluster service account, else the default kubeconfig",
                                     "file", example="/etc/aura/kubeconfig")
    refresh_interval: float = setting(300.0, "how often they are listed", "duration")


GRAPH_WEIGHTS = ("strength", "distance")
GRAPH_FEATURE = "edges"  # what the sources call a graph analysis' edge query


@dataclass(frozen=True)
class GraphConfig:
    """A service graph from edge metrics; see the README's 'Dependency graph' section."""

    caller: str = setting(MISSING, "the label naming an edge's caller (source_workload, client)", "custom")
    callee: str = setting(MISSING, "...and its callee (destination_workload, server)", "custom")
    weight: str = setting("strength", "strength: higher is a stronger link (request rate); distance: higher is "
                          "weaker", "choice", choices=GRAPH_WEIGHTS)
    min_weight: float = setting(0.0, "edges at or below this are absent (strength) / beyond it (distance)", "number",
                                low=0.0)
    max_services: int = setting(500, "services kept per cycle", "integer", low=2)
    max_findings: int = setting(20, "cycles, cut-off parts and changed edges exported, each; the rest are counted",
                                "integer")
    min_persistence: float = setting(0.0, "H1 bars shorter than this (in filtration units) are noise", "number",
                                     low=0.0)


@dataclass(frozen=True)
class GraphLink:
    """Feeds a graph analysis' findings to this analysis' council: entity label `label` names a service."""

    analysis: str
    label: str


@dataclass(frozen=True, kw_only=True)
class Analysis:
    name: str = setting(MISSING, "[a-zA-Z_][a-zA-Z0-9_]*, unique", "custom", example="node")
    entity_labels: tuple[str, ...] = setting(MISSING, "series with equal values of these labels form one entity",
                                             "custom", example="[instance]")
    step: float = setting(MISSING, "query_range step", "duration", example="15s")
    window: float = setting(MISSING, "window length; at least 8 steps", "duration", example="30m")
    interval: float = setting(MISSING, "how often the analysis runs (default: step)", "duration", example="1m")
    max_series: int = setting(10000, "per feature query; more is an error (too_many_series)", "integer")
    max_entities: int = setting(10000, "more are left out (the same ones each cycle) and counted", "integer")
    max_missing_ratio: float = setting(0.25, "an entity missing more of its window is skipped", "number",
                                       low=0.0, high=0.9)
    max_gap: float = setting(0.0, "longer runs of missing steps are not filled (default: 4 steps)", "duration",
                             example="1m")
    topology: TopologyConfig = setting(TopologyConfig(), "", "custom")
    baseline: BaselineConfig = setting(BaselineConfig(), "see 'Baselines'", "custom")
    forecast: ForecastConfig = setting(ForecastConfig(), "see 'Forecasts'", "custom")
    council: CouncilConfig = setting(CouncilConfig(), "see 'Council'", "custom")
    kubernetes: KubernetesMapping | None = setting(None, "the entity is a pod (or {node: <label>}): see 'Kubernetes "
                                                   "topology enrichment'", "custom",
                                                   example="{pod: pod, namespace: namespace}")
    features: tuple[Feature, ...] = setting(MISSING, "name: {query, role, limit, direction, min_deviation}", "custom")
    graph_link: GraphLink | None = None  # council.graph: the graph analysis whose findings the council weighs

    @property
    def steps(self) -> int:
        """Points per window: the window divided by the step."""
        return int(round(self.window / self.step))

    @property
    def warm_up(self) -> float:
        """Seconds before an entity's drift has a z-score: a window beyond its reference, then min_history cycles."""
        return self.window + self.baseline.min_history * self.interval

    @property
    def max_gap_steps(self) -> int:
        return int(self.max_gap // self.step) if self.max_gap else 4


@dataclass(frozen=True, kw_only=True)
class GraphAnalysis:
    """An analysis of kind graph: one edge query whose series name a caller and a callee, made into a
    service graph each cycle by its own stage (aura_exporter/graph); no features, forecaster or council.
    What the sources ask of any analysis (its entity labels, its queries, a cap on series) it answers from
    its graph settings: an edge's labels, the edge query, every pair of `max_services`."""

    name: str = setting(MISSING, "[a-zA-Z_][a-zA-Z0-9_]*, unique", "custom", example="mesh")
    step: float = setting(MISSING, "query_range step", "duration", example="30s")
    window: float = setting(MISSING, "the edges' values are averaged over this window", "duration", example="5m")
    interval: float = setting(MISSING, "how often the graph is analysed (default: step)", "duration", example="1m")
    graph: GraphConfig = setting(MISSING, "the edge query and how its series make a graph", "custom")
    baseline: BaselineConfig = setting(BaselineConfig(), "see 'Baselines'", "custom")
    query: str = ""  # graph.query: the edge query

    @property
    def steps(self) -> int:
        return int(round(self.window / self.step))

    @property
    def entity_labels(self) -> tuple[str, ...]:
        return (self.graph.caller, self.graph.callee)

    @property
    def features(self) -> tuple[Feature, ...]:
        return (Feature(GRAPH_FEATURE, self.query, "network"),)

    @property
    def max_series(self) -> int:
        return self.graph.max_services * self.graph.max_services


AnyAnalysis = Analysis | GraphAnalysis


@dataclass(frozen=True)
class Config:
    prometheus: PrometheusConfig = setting(MISSING, "", "custom")
    analyses: tuple[AnyAnalysis, ...] = setting(MISSING, "", "custom")
    source: str = "<memory>"
    kubernetes: KubernetesConfig = setting(KubernetesConfig(), "optional: see 'Kubernetes topology enrichment'",
                                           "custom")
