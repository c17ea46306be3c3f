"""Every scrape configuration the project ships is valid and honours the entities' own labels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SCRAPE_CONFIGS = sorted(p for p in (REPO / "deploy").rglob("*.y*ml") if "scrape_configs" in p.read_text())


def test_there_are_shipped_scrape_configs():
    assert SCRAPE_CONFIGS


@pytest.mark.parametrize("path", SCRAPE_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_scrape_config_is_valid_and_sets_honor_labels(path: Path):
    document = yaml.safe_load(path.read_text())
    jobs = [job for job in document["scrape_configs"] if "aura" in job["job_name"]]
    assert jobs and all(job.get("honor_labels") is True for job in jobs)
    check = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def test_alertmanager_example_is_valid():
    check = subprocess.run(["amtool", "check-config", str(ALERTMANAGER)], capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("severity, receiver", [("critical", "pager"), ("warning", "chat")])
def test_alertmanager_example_routes_by_severity(severity, receiver):
    routed = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                             f"severity={severity}", "alertname=AuraCapacityBreachPredicted", "analysis=node",
                             "instance=db-3"], capture_output=True, text=True, timeout=30)
    assert routed.returncode == 0 and routed.stdout.strip() == receiver, routed.stdout + routed.stderr


def test_alertmanager_example_lets_critical_inhibit_warnings_of_the_same_entity():
    document = yaml.safe_load(ALERTMANAGER.read_text())
    rule = document["inhibit_rules"][0]
    assert 'severity="critical"' in rule["source_matchers"] and 'severity="warning"' in rule["target_matchers"]
    assert {"analysis", "instance"} <= set(rule["equal"])


# --- Kubernetes ---------------------------------------------------------------------------------------------------

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())
MODELS = {("v1", "Service"): "V1Service", ("v1", "ConfigMap"): "V1ConfigMap",
          ("v1", "ServiceAccount"): "V1ServiceAccount", ("apps/v1", "StatefulSet"): "V1StatefulSet",
          ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
          ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
          ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
          ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy"}


def rendered(overlay: str) -> list[dict]:
    done = subprocess.run(["kubectl", "kustomize", str(KUBERNETES / "overlays" / overlay)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def of_kind(objects: list[dict], kind: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_every_overlay_loads_into_the_kubernetes_models_unchanged(overlay):
    """Deserialised into the client's model classes and serialised back, nothing is lost: a misspelt
    or misplaced field would be dropped and show here."""
    import json

    from kubernetes.client import ApiClient

    client = ApiClient()
    for document in rendered(overlay):
        key = (document["apiVersion"], document["kind"])
        if key[0] == "monitoring.coreos.com/v1":
            continue  # Prometheus Operator's kinds: checked below
        model = client.deserialize(json.dumps(document), MODELS[key], "application/json")
        assert client.sanitize_for_serialization(model) == document, key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_shards_follow_the_replicas_and_prometheus_keeps_the_entities_labels(overlay):
    objects = rendered(overlay)
    statefulset = of_kind(objects, "StatefulSet")
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--shard.count={statefulset['spec']['replicas']}" in args
    assert not any(a.startswith("--shard.index") for a in args)  # the pod's ordinal is its shard
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    storage = next(a for a in args if a.startswith("--storage.path="))
    for probe, path in (("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy")):
        command = pod["containers"][0][probe]["exec"]["command"]  # works with TLS and basic auth on
        assert command[:3] == ["python", "-m", "aura_exporter.probe"] and f"--probe.path={path}" in command
        assert storage in command  # where the exporter writes the probe's token
    monitor = of_kind(objects, "ServiceMonitor")
    assert all(endpoint["honorLabels"] is True for endpoint in monitor["spec"]["endpoints"])
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert of_kind(objects, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# The Kubernetes client calls sources/kubernetes.py makes, and the (API group, resource) each reads.
CLIENT_CALLS = {"list_pod_for_all_namespaces": ("", "pods"), "list_node": ("", "nodes"),
                "list_replica_set_for_all_namespaces": ("apps", "replicasets")}


def test_the_cluster_role_grants_what_the_code_calls_and_nothing_more():
    import re

    code = (REPO / "aura_exporter" / "sources" / "kubernetes.py").read_text()
    assert set(re.findall(r"\b(?:core|apps)\.(\w+)\(", code)) == set(CLIENT_CALLS)
    role = of_kind(rendered("single"), "ClusterRole")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == {(group, resource, "list") for group, resource in CLIENT_CALLS.values()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policy_admits_the_monitoring_namespace_to_the_exporters_port(overlay):
    objects = rendered(overlay)
    policy, pod = of_kind(objects, "NetworkPolicy")["spec"], of_kind(objects, "StatefulSet")["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (rule,) = policy["ingress"]
    ports = {port["name"] for port in pod["spec"]["containers"][0]["ports"]}
    assert {port["port"] for port in rule["ports"]} <= ports
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_sharded_overlay_runs_three_shards_and_the_gpu_overlay_a_gpu():
    assert of_kind(rendered("sharded"), "StatefulSet")["spec"]["replicas"] == 3
    gpu = rendered("gpu")
    container = of_kind(gpu, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1" and container["image"].endswith("-cuda")
    config = next(o for o in gpu if o["kind"] == "ConfigMap" and "aura.yml" in o.get("data", {}))
    assert all(a["forecast"]["device"] == "cuda" for a in yaml.safe_load(config["data"]["aura.yml"])["analyses"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_the_overlay_ships_is_valid(overlay):
    from aura_exporter.config import parse_config

    configs = [o for o in rendered(overlay) if o["kind"] == "ConfigMap" and "aura.yml" in o.get("data", {})]
    assert len(configs) == 1
    assert parse_config(configs[0]["data"]["aura.yml"]).analyses


def test_the_prometheus_rule_and_the_dashboard_configmap_are_the_shipped_ones():
    import json

    objects = rendered("single")
    rules = yaml.safe_load((REPO / "rules" / "aura-alerts.yml").read_text())
    assert of_kind(objects, "PrometheusRule")["spec"] == rules
    dashboards = next(o for o in objects if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"])
    shipped = {p.name: json.loads(p.read_text()) for p in (REPO / "dashboards").glob("*.json")}
    assert {name: json.loads(text) for name, text in dashboards["data"].items()} == shipped


# --- container image and compose stack ----------------------------------------------------------------------------

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose"


def test_dockerfile_passes_hadolint():
    import shutil
    import sys

    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, "--config", str(DOCKERFILE.parent / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_health_check_and_a_cuda_variant():
    text = DOCKERFILE.read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and "AS build" in stages[0] and "COPY --from=build" in text
    user = next(line.split()[1] for line in text.splitlines() if line.startswith("USER "))
    assert user.split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in text and '"aura_exporter.probe", "--probe.path=/-/healthy"' in text
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    storage = next(part for part in cmd.replace('"', " ").split() if part.startswith("--storage.path="))
    assert f'"{storage}"' in text.split("HEALTHCHECK")[1].split("ENTRYPOINT")[0]  # the token where CMD keeps state
    assert 'ARG VARIANT=cpu' in text and '"$VARIANT" = "cuda"' in text and "torch==2.13.0" in text


def test_compose_stack_is_complete_and_each_config_in_it_is_valid():
    from aura_exporter.config import load_config

    stack = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    assert set(stack["services"]) == {"aura-exporter", "prometheus", "alertmanager", "grafana", "node-exporter"}
    for service in stack["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), source
    assert load_config(str(COMPOSE / "aura.yml")).analyses
    checked = subprocess.run(["amtool", "check-config", str(COMPOSE / "alertmanager.yml")], capture_output=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    provider = yaml.safe_load((COMPOSE / "grafana" / "dashboards.yml").read_text())["providers"][0]
    grafana_volumes = stack["services"]["grafana"]["volumes"]
    assert any(v.endswith(provider["options"]["path"] + ":ro") and v.startswith("../../dashboards")
               for v in grafana_volumes)
