"""The configuration's typed, frozen objects: what every stage after the edge reads."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class PrometheusConfig:
    url: str
    timeout: float = 30.0
    bearer_token_file: str | None = None
    basic_auth: BasicAuth | None = None
    tls: TLSConfig = TLSConfig()
    headers: tuple[tuple[str, str], ...] = ()
    max_concurrency: int = 4
    retries: int = 3
    max_points_per_query: int = 11000  # Prometheus refuses more than 11,000 points per series


@dataclass(frozen=True)
class Feature:
    name: str
    query: str
    role: str
    limit: float | None = None
    direction: str = "both"  # which deviations count as risk: up, down or both (default up with a limit)
    min_deviation: float = 0.0  # in the feature's units: smaller deviations never count


@dataclass(frozen=True)
class BaselineConfig:
    """How each entity's reference window is learned; see the README's 'Baselines' section."""

    refresh_interval: float = 6 * 3600.0
    min_history: int = 10  # drift samples needed before a z-score is given (warm-up)
    history: int = 240  # drift samples kept for the z-score
    learn_below_zscore: float = 3.0  # windows this unusual never become or feed the baseline
    forget_after: float = 3600.0  # entities unseen this long lose their baseline
    save_interval: float = 300.0  # how often baselines are written to the state directory (and on shutdown)
    learn_from_history: float = 2 * 86400.0  # with nothing saved, cycles replayed over this much history at start-up


@dataclass(frozen=True)
class TopologyConfig:
    homology_dimensions: tuple[int, ...] = (0, 1)
    noise_factor: float = 3.0  # features shorter than this × the median H0 bar are noise
    min_persistence: float = 0.5  # ...and never shorter than this, in robust-scaled units
    embedding_dimension: int = 1  # Takens delay embedding of each window (1: the window's points as they are)
    embedding_delay: int = 1  # steps between the delayed copies
    max_points: int = 0  # >0: average consecutive points of each cloud down to at most this many (0: all)
    novelty_history: int = 0  # >0: judge each step's Takens point against this many past ones (topology/novelty.py)
    novelty_scales: tuple[int, ...] = (1,)  # steps averaged per coordinate of a novelty point, one history each


@dataclass(frozen=True)
class ForecastConfig:
    """The liquid-network forecaster of one analysis; see the README's 'Forecasts' section."""

    enabled: bool = True
    horizons: tuple[float, ...] = (900.0, 3600.0, 7200.0, 14400.0)
    context: float = 14400.0  # how far back the forecaster looks (default: the longest horizon)
    history: float = 3 * 86400.0  # seconds of history to train on
    retrain_interval: float = 86400.0  # fine-tune this often; 0 never
    device: str = "auto"  # auto | cpu | cuda
    units: int = 64
    input_steps: int = 60  # points in the context, context / input_steps apart
    max_epochs: int = 40
    max_train_time: float = 600.0
    max_samples: int = 20000
    trend_share: float = 0.25  # training samples given a synthetic steady trend (see forecast/data.py)
    seasons: tuple[float, ...] = ()  # lags the forecaster also sees, e.g. (1d, 1w); off: they cost breach lead

    @property
    def context_step(self) -> float:
        return self.context / self.input_steps


# The kinds of evidence the built-in agents weigh (council/evidence.py); `council.evidence` picks among them.
EVIDENCE_KINDS = ("level", "state", "surprise", "novelty", "record", "breach", "drift", "isolation", "dependency_loop",
                  "partition", "new_caller")
# Drift is exported, and weighed where asked for, but does not page by default: its z-score against the entity's own
# recent drift is heavy-tailed, and on SMD it cost recall and doubled the false pages at the same budget.
DEFAULT_EVIDENCE = tuple(kind for kind in EVIDENCE_KINDS if kind != "drift")


@dataclass(frozen=True)
class CouncilConfig:
    """How the agents' scores become a risk and a decision; see the README's 'Council' section."""

    quorum: float = 0.75  # combined risk the council needs to call critical
    warn: float = 0.4  # combined risk for warn
    sigmas: float = 5.0  # deviation, in robust standard deviations, at which evidence scores 0.5
    confirm_cycles: int = 2  # a decision is taken once the risk has reached its threshold this many cycles
    hysteresis: float = 0.15  # a decision is left only once the risk is this far below its threshold...
    clear_cycles: int = 3  # ...for this many consecutive cycles
    peers: bool = True  # entities are alike (a fleet): compare each with the fleet, not only itself
    calibrate: bool = False  # risk as the tail probability of the entity's own recent risks (council/calibration.py)
    evidence: tuple[str, ...] = DEFAULT_EVIDENCE  # the kinds the agents weigh; the others are left out
    false_pages_per_week: float = 1.0  # thresholds learned per entity to page this often on normal behaviour; 0: off


@dataclass(frozen=True)
class KubernetesMapping:
    """How an analysis' entity labels name a Kubernetes object: a pod (namespace and name) or a node."""

    kind: str  # pod | node
    name_label: str
    namespace_label: str | None = None  # pods only


@dataclass(frozen=True)
class KubernetesConfig:
    """Optional topology enrichment from the Kubernetes API; see the README's 'Kubernetes'."""

    enabled: bool = False
    kubeconfig: str | None = None  # None: the in-cluster service account, else the default kubeconfig
    refresh_interval: float = 300.0


GRAPH_WEIGHTS = ("strength", "distance")
GRAPH_FEATURE = "edges"  # the one feature of a graph analysis: its edge query


@dataclass(frozen=True)
class GraphConfig:
    """A service graph from edge metrics; see the README's 'Dependency graph' section."""

    caller: str  # the label naming an edge's caller (source_workload, client)
    callee: str  # ...and its callee (destination_workload, server)
    weight: str = "strength"  # strength: higher is a stronger link (request rate); distance: higher is weaker
    min_weight: float = 0.0  # edges whose value is at or below this are absent (strength) / beyond it (distance)
    max_services: int = 500
    max_findings: int = 20  # cycles, cut-off parts and changed edges exported, each; the rest are counted
    min_persistence: float = 0.0  # H1 bars shorter than this (in filtration units) are noise


@dataclass(frozen=True)
class GraphLink:
    """Feeds a graph analysis' findings to this analysis' council: entity label `label` names a service."""

    analysis: str
    label: str


@dataclass(frozen=True)
class Analysis:
    name: str
    entity_labels: tuple[str, ...]
    step: float
    window: float
    interval: float
    features: tuple[Feature, ...]
    max_series: int = 10000
    max_entities: int = 10000
    max_missing_ratio: float = 0.25
    max_gap: float = 0.0  # seconds; 0 means "4 steps"
    topology: TopologyConfig = TopologyConfig()
    baseline: BaselineConfig = BaselineConfig()
    forecast: ForecastConfig = ForecastConfig()
    council: CouncilConfig = CouncilConfig()
    kubernetes: KubernetesMapping | None = None
    # A graph analysis (kind: graph) has one feature, GRAPH_FEATURE, whose series are edges named by
    # `entity_labels` (caller, callee); it has no forecaster and its own stage (aura_exporter/graph).
    graph: GraphConfig | None = None
    graph_link: GraphLink | None = None  # metric analyses: the graph analysis whose findings the council weighs

    @property
    def steps(self) -> int:
        """Points per window: the window divided by the step."""
        return int(round(self.window / self.step))

    @property
    def max_gap_steps(self) -> int:
        return int(self.max_gap // self.step) if self.max_gap else 4


@dataclass(frozen=True)
class Config:
    prometheus: PrometheusConfig
    analyses: tuple[Analysis, ...]
    source: str = "<memory>"
    kubernetes: KubernetesConfig = KubernetesConfig()
