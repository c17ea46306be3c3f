"""The shipped Grafana dashboards, built with grafana-foundation-sdk (Grafana's typed SDK).

Three dashboards: the fleet overview (who is at risk, what the council decided, the fleet's shape,
the exporter's own health), the entity drill-down (one entity's topology, forecasts and votes) and
the service graph (the parts, loops and changed edges of an analysis of kind graph).
Every selector, threshold and link comes from settings; panels use only the exporter's own series,
so they work without the recording rules loaded.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from aura_exporter.mixin import settings as s

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
ANALYSIS = 'analysis="$analysis"'
ENTITY = f'{ANALYSIS}, {s.ENTITY_LABEL}="$entity"'
LEGEND_ENTITY = "{{" + s.ENTITY_LABEL + "}}"
FORECAST = f'{ENTITY}, feature=~"$feature", horizon="{s.DASHBOARD_HORIZON}"'
RISK_STEPS = [(None, "green"), (s.COUNCIL_WARN, "orange"), (s.COUNCIL_QUORUM, "red")]


def query(expr: str, legend: str = "", instant: bool = False, ref: str = "A") -> prom.Dataquery:
    target = prom.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref)
    return target.instant() if instant else target.range()


def thresholds(steps: list[tuple[float | None, str]]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=value, color=color) for value, color in steps])


def placed(panel, width: int, height: int = 8):
    return panel.datasource(DATASOURCE).span(width).height(height)


def series(title: str, description: str, targets: list[prom.Dataquery], unit: str = "short",
           width: int = 12, **limits: float) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).fill_opacity(10)
    for index, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + index)))
    if "min_val" in limits:
        panel = panel.min(limits["min_val"])
    if "max_val" in limits:
        panel = panel.max(limits["max_val"])
    return placed(panel, width)


def variables(entity: bool, analyses: str) -> list[Builder]:
    found = [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dash.QueryVariable("analysis").label("Analysis").datasource(DATASOURCE)
        .query(f"label_values({analyses}, analysis)").refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC),
    ]
    if entity:
        found += [
            dash.QueryVariable("entity").label(s.ENTITY_LABEL).datasource(DATASOURCE)
            .query(f"label_values(aura_risk_score{{{ANALYSIS}}}, {s.ENTITY_LABEL})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC),
            dash.QueryVariable("feature").label("Feature").datasource(DATASOURCE)
            .query(f"label_values(aura_forecast{{{ENTITY}}}, feature)").multi(True).include_all(True)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC),
        ]
    return found


def link(title: str, url: str) -> dash.DashboardLink:
    return dash.DashboardLink(title).type(model.DashboardLinkType.LINK).url(url).target_blank(True)


def drilldown_url(entity_field: str) -> str:
    return (f"/d/{s.ENTITY_DASHBOARD_UID}/aura-entity?var-datasource=${{datasource}}&var-analysis=$analysis"
            f"&var-entity={entity_field}&${{__url_time_range}}")


def base(title: str, uid: str, description: str, entity: bool,
         analyses: str = "aura_entities_analysed") -> dash.Dashboard:
    """A dashboard with its variables; `analyses` is the series whose `analysis` values it offers."""
    board = (dash.Dashboard(title).uid(uid).description(description).tags(["aura", "generated"])
             .refresh("1m").time("now-6h", "now").timezone("browser"))
    for variable in variables(entity, analyses):
        board = board.with_variable(variable)
    return board


def fleet_overview() -> dash.Dashboard:
    board = base("AURA / Fleet overview", s.FLEET_DASHBOARD_UID,
                 "Who is at risk, what the council decided, the fleet's shape and the exporter's health.", False)
    board = board.link(link("Built-in UI", s.AURA_URL + "/"))
    entity_link = link(f"Drill down into ${{__field.labels.{s.ENTITY_LABEL}}}",
                       drilldown_url(f"${{__field.labels.{s.ENTITY_LABEL}}}"))
    return (
        board.with_row(dash.Row("Council"))
        .with_panel(placed(
            statetimeline.Panel().title(f"Risk of the {s.TOP_ENTITIES} riskiest entities")
            .description("The council's risk per entity (0..1): orange from warn, red from the quorum.")
            .with_target(query(f"topk({s.TOP_ENTITIES}, aura_risk_score{{{ANALYSIS}}})", LEGEND_ENTITY))
            .min(0).max(1).thresholds(thresholds(RISK_STEPS))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
            .data_links([entity_link]), 16, 10))
        .with_panel(placed(
            stat.Panel().title("Entities by decision").description("How many entities the council puts in each "
                                                                    "decision now.")
            .with_target(query(f"sum by (decision) (aura_decision{{{ANALYSIS}}})", "{{decision}}", instant=True))
            .unit("short"), 8, 10))
        .with_panel(placed(
            table.Panel().title(f"Top {s.TOP_ENTITIES} entities by risk")
            .description("Click an entity for its drill-down.")
            .with_target(query(f"topk({s.TOP_ENTITIES}, aura_risk_score{{{ANALYSIS}}})", instant=True)
                         .format(PromQueryFormat.TABLE))
            .unit("percentunit").data_links([entity_link]), 12, 10))
        .with_panel(placed(
            table.Panel().title("Firing AURA alerts")
            .description("Alerts of the shipped rules now firing for this analysis.")
            .with_target(query(f'ALERTS{{alertname=~"Aura.*", alertstate="firing", {ANALYSIS}}}', instant=True)
                         .format(PromQueryFormat.TABLE)), 12, 10))
        .with_panel(placed(
            bargauge.Panel().title("Votes per agent").description("Entities each agent flags now.")
            .with_target(query(f"sum by (agent) (aura_agent_vote{{{ANALYSIS}}})", "{{agent}}", instant=True))
            .unit("short").min(0), 8))
        .with_row(dash.Row("Fleet topology"))
        .with_panel(series("Behaviour clusters", "Persistent H0 of the entities' recent states: more than one "
                                                 "cluster means part of the fleet behaves apart.",
                           [query(f"aura_fleet_components{{{ANALYSIS}}}", "clusters")], width=8, min_val=0))
        .with_panel(series("Most isolated entities", "Distance at which each entity joins the fleet's majority, "
                                                     "against the cluster threshold.",
                           [query(f"topk({s.TOP_ENTITIES}, aura_fleet_isolation{{{ANALYSIS}}})", LEGEND_ENTITY),
                            query(f"max(aura_fleet_cluster_threshold{{{ANALYSIS}}})", "cluster threshold")],
                           width=8, min_val=0))
        .with_panel(series("Largest drift", "Topological drift of each entity against its own norm (robust σ).",
                           [query(f"topk({s.TOP_ENTITIES}, aura_drift_zscore{{{ANALYSIS}}})", LEGEND_ENTITY)],
                           width=8))
        .with_row(dash.Row("Exporter health"))
        .with_panel(series("Cycle duration by stage (p90)", "How long each stage of a cycle takes.",
                           [query("histogram_quantile(0.9, sum by (le, stage) (rate(aura_analysis_duration_seconds_"
                                  f"bucket{{{ANALYSIS}}}[$__rate_interval])))", "{{stage}}")], unit="s", width=8))
        .with_panel(series("Freshness", "Seconds since the analysis' last complete cycle.",
                           [query(f"time() - max(aura_analysis_last_success_timestamp_seconds{{{ANALYSIS}}})",
                                  "age")], unit="s", width=8, min_val=0))
        .with_panel(series("Query errors", "PromQL failures per second by reason.",
                           [query(f"sum by (reason) (rate(aura_query_errors_total{{{ANALYSIS}}}[$__rate_interval]))"
                                  " or vector(0)", "{{reason}}")], unit="reqps", width=8, min_val=0))
    )


def entity_drilldown() -> dash.Dashboard:
    board = base("AURA / Entity", s.ENTITY_DASHBOARD_UID,
                 "One entity: the council's votes, its topology, its forecasts.", True)
    board = (board.link(link("Fleet overview", f"/d/{s.FLEET_DASHBOARD_UID}/aura-fleet?var-analysis=$analysis"))
             .link(link("Entity in the built-in UI", s.AURA_URL + "/ui/entities/$analysis/by-labels?"
                        + f"{s.ENTITY_LABEL}=$entity")))
    return (
        board.with_row(dash.Row("Council"))
        .with_panel(series("Risk", "The council's risk (0..1) with the warn and critical thresholds.",
                           [query(f"aura_risk_score{{{ENTITY}}}", "risk")], unit="percentunit", width=8,
                           min_val=0, max_val=1))
        .with_panel(placed(
            statetimeline.Panel().title("Decision").description("The council's decision over time.")
            .with_target(query(f"aura_decision{{{ENTITY}}} == 1", "{{decision}}")), 8))
        .with_panel(series("Agents' scores", "Each agent's score (0..1); an agent votes from the warn threshold.",
                           [query(f"aura_agent_score{{{ENTITY}}}", "{{agent}}")], unit="percentunit", width=8,
                           min_val=0, max_val=1))
        .with_panel(placed(
            statetimeline.Panel().title("Agents' votes").description("1 while the agent flags the entity.")
            .with_target(query(f"aura_agent_vote{{{ENTITY}}}", "{{agent}}")).min(0).max(1)
            .thresholds(thresholds([(None, "green"), (1, "red")]))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS)), 24, 5))
        .with_row(dash.Row("Topology"))
        .with_panel(series("Betti numbers", "Persistent features per homology dimension.",
                           [query(f"aura_betti{{{ENTITY}}}", "H{{homology_dimension}}")], width=6, min_val=0))
        .with_panel(series("Persistence entropy", "Entropy (bits) of the window's diagram per dimension.",
                           [query(f"aura_persistence_entropy{{{ENTITY}}}", "H{{homology_dimension}}")], width=6))
        .with_panel(series("Wasserstein drift", "Distance of the window's diagram from the baseline's, per "
                                                "dimension.",
                           [query(f"aura_wasserstein_drift{{{ENTITY}}}", "H{{homology_dimension}}")], width=6))
        .with_panel(series("Drift z-score and isolation", "Drift against the entity's own norm (robust σ), and its "
                                                          "distance from the fleet's majority.",
                           [query(f"aura_drift_zscore{{{ENTITY}}}", "drift z-score"),
                            query(f"aura_fleet_isolation{{{ENTITY}}}", "isolation")], width=6))
        .with_row(dash.Row("Forecasts"))
        .with_panel(series(f"$feature: forecast at {s.DASHBOARD_HORIZON}",
                           "Median forecast with its 10–90% band, at the dashboard's horizon.",
                           [query(f"{metric}{{{FORECAST}}}", f"{{{{feature}}}} {name}")
                            for metric, name in (("aura_forecast_lower", "10%"), ("aura_forecast", "median"),
                                                 ("aura_forecast_upper", "90%"))], width=12))
        .with_panel(series("Time to breach", "Forecast time until a feature reaches its limit (absent when none "
                                             "is in sight).",
                           [query(f"aura_time_to_breach_seconds{{{ENTITY}}}", "{{feature}}")], unit="s", width=6,
                           min_val=0))
        .with_panel(series("Breach probability and surprise", "Probability of reaching the limit within the "
                                                              "horizons, and the newest value's residual z-score.",
                           [query(f"aura_breach_probability{{{ENTITY}}}", "{{feature}} breach"),
                            query(f"aura_forecast_residual_zscore{{{ENTITY}}}", "{{feature}} surprise")], width=6))
    )


def service_graph() -> dash.Dashboard:
    board = base("AURA / Service graph", s.GRAPH_DASHBOARD_UID,
                 "An analysis of kind graph: its parts, request loops and changed dependencies.", False,
                 analyses="aura_graph_services")
    board = board.link(link("Service graph in the built-in UI", s.AURA_URL + "/ui/graphs/$analysis"))
    return (
        board.with_row(dash.Row("Topology"))
        .with_panel(series("Parts and request loops", "Betti numbers of the service graph: H0 its parts (1: whole), "
                                                      "H1 its independent request loops.",
                           [query(f"aura_graph_betti{{{ANALYSIS}}}", "H{{homology_dimension}}")], width=8,
                           min_val=0))
        .with_panel(series("Graph drift", "Wasserstein distance of the graph's diagram from its baseline's.",
                           [query(f"aura_graph_wasserstein_drift{{{ANALYSIS}}}", "H{{homology_dimension}}")],
                           width=8, min_val=0))
        .with_panel(placed(
            table.Panel().title("Services in request loops and cut off")
            .description("Each loop (named by its first service; new: not in the baseline) and each part cut off "
                         "from the main one, with their services.")
            .with_target(query(f"aura_graph_cycle_services{{{ANALYSIS}}} * on (analysis, cycle) group_left () "
                               f"aura_graph_cycle_new{{{ANALYSIS}}}", instant=True).format(PromQueryFormat.TABLE))
            .with_target(query(f"aura_graph_partition_services{{{ANALYSIS}}}", instant=True, ref="B")
                         .format(PromQueryFormat.TABLE)), 8))
        .with_panel(placed(
            table.Panel().title("Edges against the baseline")
            .description("Dependencies that appeared (weight now) or vanished (weight in the baseline).")
            .with_target(query(f"aura_graph_edge_change{{{ANALYSIS}}}", instant=True).format(PromQueryFormat.TABLE)),
            24))
        .with_panel(series("Size", "Services and edges in the graph.",
                           [query(f"aura_graph_services{{{ANALYSIS}}}", "services"),
                            query(f"aura_graph_edges{{{ANALYSIS}}}", "edges")], width=8, min_val=0))
        .with_panel(series("Edge series left out", "Edge series skipped by reason (missing_label, self_loop, "
                                                   "no_value, weak).",
                           [query(f"aura_graph_edges_skipped{{{ANALYSIS}}}", "{{reason}}")], width=8, min_val=0))
        .with_panel(series("Baseline age", "Age of the baseline graph that findings are compared with.",
                           [query(f"aura_graph_baseline_age_seconds{{{ANALYSIS}}}", "age")], unit="s", width=8,
                           min_val=0))
    )


DASHBOARDS = {"aura-fleet-overview.json": fleet_overview, "aura-entity.json": entity_drilldown,
              "aura-service-graph.json": service_graph}
