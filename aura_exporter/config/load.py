"""The configuration file: YAML loaded into typed, frozen objects and validated once, at the edge.

Every problem in a file is reported at once, each with the file, the key path and what is wrong,
the way prometheus-pve-exporter and promtool report configuration errors.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlparse

import promql_parser
import yaml

from aura_exporter.config.model import (
    DEFAULT_EVIDENCE,
    EVIDENCE_KINDS,
    MIN_WINDOW_STEPS,
    NOVELTY_MIN_HISTORY,
    RESERVED_LABELS,
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
    embedding_span,
)
from aura_exporter.config.reader import DuplicateKeyLoader, Reader
from aura_exporter.config.setting import allowed_keys, read_section, required_keys

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")
NOVELTY_MAX_HISTORY = 100_000


def load_config(path: str) -> Config:
    """Parse and validate a configuration file; ConfigError lists every problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(path, [f"cannot read the file: {err.strerror}"]) from err
    return parse_config(text, source=path)


def parse_config(text: str, source: str = "<memory>") -> Config:
    try:
        document = yaml.load(text, Loader=DuplicateKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(source, [f"invalid YAML: {err}"]) from err
    reader = Reader()
    root = reader.mapping(document, "$", allowed_keys(Config), required_keys(Config))
    prometheus = _read_prometheus(reader, root.get("prometheus"), "prometheus")
    analyses = _read_analyses(reader, root.get("analyses"), "analyses")
    kubernetes = _read_kubernetes(reader, root.get("kubernetes"), "kubernetes")
    if reader.problems:
        raise ConfigError(source, reader.problems)
    return Config(prometheus=prometheus, analyses=analyses, source=source, kubernetes=kubernetes)


def _read_kubernetes(reader: Reader, value: Any, path: str) -> KubernetesConfig:
    node = reader.mapping(value, path, allowed_keys(KubernetesConfig))
    return KubernetesConfig(**read_section(reader, node, path, KubernetesConfig))


def _read_kubernetes_mapping(reader: Reader, value: Any, path: str,
                             entity_labels: tuple[str, ...]) -> KubernetesMapping | None:
    """`{pod: <label>, namespace: <label>}` or `{node: <label>}`, naming entity labels."""
    if value is None:
        return None
    node = reader.mapping(value, path, {"pod", "namespace", "node"})
    labels = {key: reader.string(node.get(key), f"{path}.{key}") for key in ("pod", "namespace", "node")}
    for key, label in labels.items():
        if label is not None and label not in entity_labels:
            reader.fail(f"{path}.{key}", f"{label!r} is not one of the analysis' entity_labels")
    if labels["node"] and not labels["pod"] and not labels["namespace"]:
        return KubernetesMapping("node", labels["node"])
    if labels["pod"] and labels["namespace"] and not labels["node"]:
        return KubernetesMapping("pod", labels["pod"], labels["namespace"])
    reader.fail(path, "expected either {pod: <label>, namespace: <label>} or {node: <label>}")
    return None


def _read_prometheus(reader: Reader, value: Any, path: str) -> PrometheusConfig:
    node = reader.mapping(value, path, allowed_keys(PrometheusConfig), required_keys(PrometheusConfig))
    url = reader.string(node.get("url"), f"{path}.url", "")
    parsed = urlparse(url or "")
    if url and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        reader.fail(f"{path}.url", f"expected an http:// or https:// URL, found {url!r}")
    plain = read_section(reader, node, path, PrometheusConfig)
    basic = _read_basic_auth(reader, node.get("basic_auth"), f"{path}.basic_auth")
    if plain["bearer_token_file"] and basic:
        reader.fail(path, "set at most one of bearer_token_file and basic_auth")
    return PrometheusConfig(
        **plain,
        url=(url or "").rstrip("/"),
        basic_auth=basic,
        tls=_read_tls(reader, node.get("tls_config"), f"{path}.tls_config"),
        headers=_read_headers(reader, node.get("headers"), f"{path}.headers"),
    )


def _read_basic_auth(reader: Reader, value: Any, path: str) -> BasicAuth | None:
    if value is None:
        return None
    node = reader.mapping(value, path, {"username", "password", "password_file"}, {"username"})
    password = reader.string(node.get("password"), f"{path}.password")
    password_file = reader.readable_file(node.get("password_file"), f"{path}.password_file")
    if (password is None) == (password_file is None):
        reader.fail(path, "set exactly one of password and password_file")
    if password_file and os.access(password_file, os.R_OK):
        with open(password_file, encoding="utf-8") as handle:
            password = handle.read().strip()
    return BasicAuth(username=reader.string(node.get("username"), f"{path}.username", ""), password=password or "")


def _read_tls(reader: Reader, value: Any, path: str) -> TLSConfig:
    node = reader.mapping(value, path, allowed_keys(TLSConfig))
    tls = TLSConfig(**read_section(reader, node, path, TLSConfig))
    if (tls.cert_file is None) != (tls.key_file is None):
        reader.fail(path, "cert_file and key_file go together")
    return tls


def _read_headers(reader: Reader, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    node = reader.mapping(value, path, set(value) if isinstance(value, dict) else set())
    headers = []
    for name, header_value in node.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            reader.fail(f"{path}.{name}", "not a valid HTTP header name")
        elif name.lower() in ("authorization", "host", "content-length"):
            reader.fail(f"{path}.{name}", "set by the exporter itself (use bearer_token_file or basic_auth)")
        elif reader.string(header_value, f"{path}.{name}") is not None:
            headers.append((name, header_value))
    return tuple(headers)


def _read_analyses(reader: Reader, value: Any, path: str) -> tuple[AnyAnalysis, ...]:
    if not isinstance(value, list) or not value:
        reader.fail(path, "expected a non-empty list of analyses")
        return ()
    analyses: list[AnyAnalysis] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        analysis = _read_analysis(reader, item, f"{path}[{index}]")
        if analysis is None:
            continue
        if analysis.name in seen:
            reader.fail(f"{path}[{index}].name", f"duplicate analysis name {analysis.name!r}")
        seen.add(analysis.name)
        analyses.append(analysis)
    graphs = {a.name for a in analyses if isinstance(a, GraphAnalysis)}
    for index, analysis in enumerate(analyses):
        link = analysis.graph_link if isinstance(analysis, Analysis) else None
        if link is not None and link.analysis not in graphs:
            reader.fail(f"{path}[{index}].council.graph.analysis",
                        f"{link.analysis!r} is not the name of an analysis of kind graph")
    return tuple(analyses)


def _read_analysis(reader: Reader, value: Any, path: str) -> AnyAnalysis | None:
    kind = value.get("kind", "metrics") if isinstance(value, dict) else "metrics"
    if kind == "graph":
        return _read_graph_analysis(reader, value, path)
    if kind != "metrics":
        reader.fail(f"{path}.kind", f"{kind!r} is not one of metrics, graph")
        return None
    node, plain = _read_schedule(reader, value, path, Analysis)
    name = _read_name(reader, node.get("name"), f"{path}.name")
    step, window = plain["step"], plain["window"]
    if step and window and window / step < MIN_WINDOW_STEPS:
        reader.fail(f"{path}.window", f"a window of {window:g}s holds only {window / step:g} steps of "
                    f"{step:g}s; at least {MIN_WINDOW_STEPS} are needed")
    entity_labels = _read_entity_labels(reader, node.get("entity_labels"), f"{path}.entity_labels")
    return Analysis(
        **plain,
        name=name or "",
        entity_labels=entity_labels,
        features=_read_features(reader, node.get("features"), f"{path}.features"),
        topology=_read_topology(reader, node.get("topology"), f"{path}.topology",
                                int(round(window / step)) if step and window else None),
        baseline=_read_baseline(reader, node.get("baseline"), f"{path}.baseline"),
        forecast=_read_forecast(reader, node.get("forecast"), f"{path}.forecast", step),
        council=_read_council(reader, node.get("council"), f"{path}.council"),
        kubernetes=_read_kubernetes_mapping(reader, node.get("kubernetes"), f"{path}.kubernetes", entity_labels),
        graph_link=_read_graph_link(reader, node.get("council"), f"{path}.council.graph", entity_labels),
    )


def _read_schedule(reader: Reader, value: Any, path: str, cls: type) -> tuple[dict, dict[str, Any]]:
    """An analysis' node (of type `cls`) and its plain settings: step and window 0 when missing or wrong (the
    problem is reported), the interval the step's by default."""
    node = reader.mapping(value, path, allowed_keys(cls, extra=("kind",)), required_keys(cls, defaulted=("interval",)))
    plain = read_section(reader, node, path, cls)
    plain["step"], plain["window"] = plain["step"] or 0.0, plain["window"] or 0.0
    plain["interval"] = plain["interval"] or plain["step"] or 60.0
    return node, plain


def _read_graph_analysis(reader: Reader, value: dict, path: str) -> GraphAnalysis:
    """`kind: graph`: one edge query whose series name a caller and a callee (aura_exporter/graph)."""
    node, plain = _read_schedule(reader, value, path, GraphAnalysis)
    step, window = plain["step"], plain["window"]
    if step and window and window < step:
        reader.fail(f"{path}.window", f"a window of {window:g}s is shorter than the step of {step:g}s")
    where = f"{path}.graph"
    spec = reader.mapping(node.get("graph"), where, allowed_keys(GraphConfig, extra=("query",)),
                          required_keys(GraphConfig) | {"query"})
    query = reader.string(spec.get("query"), f"{where}.query", "")
    _check_promql(reader, query, f"{where}.query")
    caller, callee = reader.string(spec.get("caller"), f"{where}.caller"), reader.string(spec.get("callee"),
                                                                                       f"{where}.callee")
    labels = _read_entity_labels(reader, [caller, callee], f"{where}.caller/callee") if caller and callee else ()
    graph = GraphConfig(caller=labels[0] if len(labels) == 2 else "", callee=labels[1] if len(labels) == 2 else "",
                        **read_section(reader, spec, where, GraphConfig))
    return GraphAnalysis(
        **plain,
        name=_read_name(reader, node.get("name"), f"{path}.name") or "",
        query=query or "",
        graph=graph,
        baseline=_read_baseline(reader, node.get("baseline"), f"{path}.baseline"),
    )


def _read_graph_link(reader: Reader, council: Any, path: str, entity_labels: tuple[str, ...]) -> GraphLink | None:
    """`council.graph: {analysis: <graph analysis>, label: <entity label naming the service>}`."""
    if not isinstance(council, dict) or council.get("graph") is None:
        return None
    node = reader.mapping(council["graph"], path, {"analysis", "label"}, {"analysis", "label"})
    label = reader.string(node.get("label"), f"{path}.label", "")
    if label and label not in entity_labels:
        reader.fail(f"{path}.label", f"{label!r} is not one of the analysis' entity_labels")
    return GraphLink(analysis=reader.string(node.get("analysis"), f"{path}.analysis", ""), label=label)


def _read_name(reader: Reader, value: Any, path: str) -> str | None:
    name = reader.string(value, path)
    if name is not None and not _NAME.match(name):
        reader.fail(path, f"{name!r} is not a valid name (letters, digits and _, not starting with a digit)")
    return name


def _read_entity_labels(reader: Reader, value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        reader.fail(path, "expected a non-empty list of label names")
        return ()
    labels = []
    for index, label in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(label, str) or not _LABEL_NAME.match(label) or label.startswith("__"):
            reader.fail(where, f"{label!r} is not a valid Prometheus label name")
        elif label in RESERVED_LABELS:
            reader.fail(where, f"{label!r} is a label the exporter sets itself")
        elif label in labels:
            reader.fail(where, f"duplicate label {label!r}")
        else:
            labels.append(label)
    return tuple(labels)


def _read_features(reader: Reader, value: Any, path: str) -> tuple[Feature, ...]:
    if not isinstance(value, dict) or not value:
        reader.fail(path, "expected a mapping of feature names to {query, role, limit}")
        return ()
    features = []
    for name, spec in value.items():
        where = f"{path}.{name}"
        if _read_name(reader, name, where) is None:
            continue
        node = reader.mapping(spec, where, allowed_keys(Feature), required_keys(Feature))
        query = reader.string(node.get("query"), f"{where}.query", "")
        _check_promql(reader, query, f"{where}.query")
        plain = read_section(reader, node, where, Feature)
        if "direction" not in node and plain["limit"] is not None:
            plain["direction"] = "up"  # a limit is a ceiling unless said otherwise
        features.append(Feature(**{**plain, "role": plain["role"] or ""}, name=name, query=query or ""))
    return tuple(features)


def _check_promql(reader: Reader, query: str | None, path: str) -> None:
    if not query:
        if query == "":
            reader.fail(path, "empty query")
        return
    try:
        expression = promql_parser.parse(query)
    except (ValueError, TypeError) as err:
        reader.fail(path, f"PromQL does not parse: {err}")
        return
    if isinstance(expression, (promql_parser.MatrixSelector, promql_parser.SubqueryExpr,
                               promql_parser.StringLiteral)):
        reader.fail(path, "a range query needs an instant vector or scalar expression, not a range vector or string")


def _read_topology(reader: Reader, value: Any, path: str, steps: int | None) -> TopologyConfig:
    node = reader.mapping(value, path, allowed_keys(TopologyConfig))
    plain = read_section(reader, node, path, TopologyConfig)
    dims = node.get("homology_dimensions", TopologyConfig.homology_dimensions)
    if (not isinstance(dims, (list, tuple)) or not dims
            or any(d not in (0, 1, 2) or isinstance(d, bool) for d in dims)):
        reader.fail(f"{path}.homology_dimensions", f"expected a list drawn from 0, 1, 2, found {dims!r}")
        dims = TopologyConfig.homology_dimensions
    dimension, delay = plain["embedding_dimension"], plain["embedding_delay"]
    if steps and steps - embedding_span(dimension, delay) + 1 < MIN_WINDOW_STEPS:
        reader.fail(f"{path}.embedding_dimension", f"a delay embedding of dimension {dimension} and delay {delay} "
                    f"leaves fewer than {MIN_WINDOW_STEPS} points of a {steps}-step window")
    return TopologyConfig(
        **plain,
        homology_dimensions=tuple(sorted(set(dims))),
        max_points=_read_max_points(reader, node.get("max_points"), f"{path}.max_points"),
        novelty_history=_read_novelty_history(reader, node.get("novelty_history"), f"{path}.novelty_history"),
        novelty_scales=_read_novelty_scales(reader, node.get("novelty_scales"), f"{path}.novelty_scales",
                                            embedding_span(dimension, delay), steps),
    )


def _read_max_points(reader: Reader, value: Any, path: str) -> int:
    points = reader.integer(value, path, TopologyConfig.max_points, low=0)
    if 0 < points < MIN_WINDOW_STEPS:
        reader.fail(path, f"{points} points carry no usable shape: 0 (all points) or at least {MIN_WINDOW_STEPS}")
    return points


def _read_novelty_history(reader: Reader, value: Any, path: str) -> int:
    points = reader.integer(value, path, TopologyConfig.novelty_history, low=0)
    if 0 < points < NOVELTY_MIN_HISTORY or points > NOVELTY_MAX_HISTORY:
        reader.fail(path, f"0 (off) or between {NOVELTY_MIN_HISTORY} and {NOVELTY_MAX_HISTORY} points "
                          f"(each costs 4 bytes per feature and embedding dimension per entity), found {points}")
    return points


def _read_novelty_scales(reader: Reader, value: Any, path: str, points_span: int, steps: int | None) -> tuple[int, ...]:
    """Distinct whole numbers of steps; a point at each (`points_span` means of that many steps) fits the window."""
    scales = list(TopologyConfig.novelty_scales) if value is None else value
    if (not isinstance(scales, list) or not scales
            or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in scales)):
        reader.fail(path, f"expected a list of whole numbers of steps, 1 or more, found {value!r}")
        return TopologyConfig.novelty_scales
    too_long = [s for s in scales if steps and points_span * s > steps]
    if too_long:
        reader.fail(path, f"a point at scale {too_long[0]} covers {points_span * too_long[0]} steps, more than the "
                          f"{steps}-step window")
    return tuple(sorted(set(scales)))


def _read_baseline(reader: Reader, value: Any, path: str) -> BaselineConfig:
    node = reader.mapping(value, path, allowed_keys(BaselineConfig))
    return BaselineConfig(**read_section(reader, node, path, BaselineConfig))


def _read_council(reader: Reader, value: Any, path: str) -> CouncilConfig:
    node = reader.mapping(value, path, allowed_keys(CouncilConfig, extra=("graph",)))
    plain = read_section(reader, node, path, CouncilConfig)
    if plain["calibrate"] and "false_pages_per_week" not in node:
        plain["false_pages_per_week"] = 0.0  # calibrate replaces the default budget; only asking for both is an error
    council = CouncilConfig(**plain, evidence=_read_evidence(reader, node.get("evidence"), f"{path}.evidence"))
    if council.calibrate and council.false_pages_per_week:
        reader.fail(path, "calibrate and false_pages_per_week both recalibrate the risk: choose one")
    if not 0 < council.warn < council.quorum <= 1:
        reader.fail(path, f"expected 0 < warn < quorum <= 1, found warn {council.warn:g} and quorum {council.quorum:g}")
    if council.hysteresis >= min(council.warn, council.quorum - council.warn):
        reader.fail(f"{path}.hysteresis", f"{council.hysteresis:g} must be below warn ({council.warn:g}) and "
                    f"below quorum - warn ({council.quorum - council.warn:g})")
    return council


def _read_evidence(reader: Reader, value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_EVIDENCE
    if not isinstance(value, list) or not value or any(kind not in EVIDENCE_KINDS for kind in value):
        reader.fail(path, f"expected a non-empty list drawn from {', '.join(EVIDENCE_KINDS)}, found {value!r}")
        return EVIDENCE_KINDS
    return tuple(kind for kind in EVIDENCE_KINDS if kind in value)


def _read_seasons(reader: Reader, value: Any, path: str, step: float | None, longest: float,
                  default: tuple[float, ...]) -> tuple[float, ...]:
    """The forecaster's seasonal lags: distinct durations, each a whole number of steps and longer than the
    longest horizon, whose target a season back must already be known (an empty list: none). Unset: those of
    the default that are."""
    if value is None:
        return tuple(season for season in default if not _season_problems(season, step, longest))
    if not isinstance(value, list):
        reader.fail(path, f"expected a list of durations, found {value!r}")
        return default
    seasons = tuple(sorted({reader.duration(s, f"{path}[{i}]", 0.0) for i, s in enumerate(value)}))
    for season in seasons:
        for problem in _season_problems(season, step, longest):
            reader.fail(path, problem)
    return seasons


def _season_problems(season: float, step: float | None, longest: float) -> list[str]:
    problems = []
    if step and season % step:
        problems.append(f"{season:g}s is not a whole number of steps of {step:g}s")
    if season <= longest:
        problems.append(f"{season:g}s is not longer than the longest horizon, {longest:g}s")
    return problems


def _read_forecast(reader: Reader, value: Any, path: str, step: float | None) -> ForecastConfig:
    node = reader.mapping(value, path, allowed_keys(ForecastConfig))
    plain = read_section(reader, node, path, ForecastConfig)
    horizons = node.get("horizons")
    if horizons is None:
        seconds = ForecastConfig.horizons
    elif not isinstance(horizons, list) or not horizons:
        reader.fail(f"{path}.horizons", "expected a non-empty list of durations")
        seconds = ()
    else:
        seconds = tuple(sorted({reader.duration(h, f"{path}.horizons[{i}]", 0.0) for i, h in enumerate(horizons)}))
    for horizon in seconds:
        if step and horizon and horizon % step:
            reader.fail(f"{path}.horizons", f"{horizon:g}s is not a whole number of steps of {step:g}s")
    longest = max(seconds) if seconds else plain["context"]
    if "context" not in node:
        plain["context"] = longest  # by default the forecaster looks back as far as it looks ahead
    context, input_steps, history = plain["context"], plain["input_steps"], plain["history"]
    if step and context and (context / input_steps) % step:
        reader.fail(f"{path}.context", f"context {context:g}s / input_steps {input_steps} = "
                    f"{context / input_steps:g}s must be a whole number of steps of {step:g}s")
    if history < 4 * (context + longest):
        reader.fail(f"{path}.history", f"{history:g}s of history is too short to learn horizons up to "
                    f"{longest:g}s from a context of {context:g}s (need at least 4 x (context + horizon))")
    return ForecastConfig(
        **plain,
        seasons=_read_seasons(reader, node.get("seasons"), f"{path}.seasons", step, longest, ForecastConfig.seasons),
        horizons=tuple(h for h in seconds if h),
    )
