"""Kubernetes topology enrichment: the node and the owner of each entity, read from the Kubernetes API.

Optional (`kubernetes.enabled`). Read-only: nodes, pods and replica sets are listed every
`refresh_interval` (in-cluster service account, or a kubeconfig); the latest complete reading is kept,
and a failed one is logged and counted while the previous reading stays in use. Explanations then say
when flagged entities share a node (pods of one node failing together point at the node, not the pods).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aura_exporter.config import KubernetesConfig, KubernetesMapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    node: str
    owner: str | None = None  # e.g. "Deployment/payments"; None for a node or a bare pod
    pod: str | None = None  # "namespace/name" for a pod entity


@dataclass(frozen=True)
class ClusterTopology:
    pods: Mapping[tuple[str, str], Placement]  # (namespace, name) → placement
    nodes: Mapping[str, str]  # a node's name, and each of its addresses, → its name

    def place(self, mapping: KubernetesMapping, labels: Mapping[str, str]) -> Placement | None:
        name = labels.get(mapping.name_label, "")
        if mapping.kind == "pod":
            return self.pods.get((labels.get(mapping.namespace_label or "", ""), name))
        node = self.nodes.get(name) or self.nodes.get(name.rsplit(":", 1)[0])  # instance="10.0.0.5:9100"
        return Placement(node) if node else None


def cluster_from(pods: Any, nodes: Any, replicasets: Any) -> ClusterTopology:
    """A topology from the API's V1PodList, V1NodeList and V1ReplicaSetList."""
    deployments = {}
    for replicaset in replicasets.items or []:
        owner = _controller(replicaset.metadata)
        if owner is not None:
            deployments[(replicaset.metadata.namespace, replicaset.metadata.name)] = owner
    placed = {}
    for pod in pods.items or []:
        meta = pod.metadata
        if not pod.spec or not pod.spec.node_name:
            continue  # not scheduled yet
        owner = _controller(meta)
        if owner and owner.startswith("ReplicaSet/"):
            owner = deployments.get((meta.namespace, owner.split("/", 1)[1]), owner)
        placed[(meta.namespace, meta.name)] = Placement(pod.spec.node_name, owner, f"{meta.namespace}/{meta.name}")
    names = {}
    for node in nodes.items or []:
        names[node.metadata.name] = node.metadata.name
        for address in (node.status.addresses if node.status and node.status.addresses else []):
            names[address.address] = node.metadata.name
    return ClusterTopology(placed, names)


def _controller(meta: Any) -> str | None:
    for reference in meta.owner_references or []:
        if reference.controller:
            return f"{reference.kind}/{reference.name}"
    return None


def read_cluster(core: Any, apps: Any) -> ClusterTopology:
    return cluster_from(core.list_pod_for_all_namespaces(), core.list_node(),
                        apps.list_replica_set_for_all_namespaces())


def connect(config: KubernetesConfig) -> tuple[Any, Any]:
    """CoreV1Api and AppsV1Api from the given kubeconfig, else in-cluster, else the default kubeconfig."""
    from kubernetes import client
    from kubernetes import config as kubeconfig

    if config.kubeconfig:
        kubeconfig.load_kube_config(config_file=config.kubeconfig)
    else:
        try:
            kubeconfig.load_incluster_config()
        except kubeconfig.ConfigException:
            kubeconfig.load_kube_config()
    return client.CoreV1Api(), client.AppsV1Api()


class ClusterWatcher:
    """Keeps the latest reading of the cluster, refreshed off the event loop."""

    def __init__(self, config: KubernetesConfig, on_error: Callable[[], None],
                 clients: Callable[[KubernetesConfig], tuple[Any, Any]] = connect):
        self.config = config
        self.on_error = on_error
        self.clients = clients
        self.latest: ClusterTopology | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                core, apps = await loop.run_in_executor(None, self.clients, self.config)
                self.latest = await loop.run_in_executor(None, read_cluster, core, apps)
                log.debug("read the cluster", extra={"pods": len(self.latest.pods), "nodes": len(self.latest.nodes)})
            except asyncio.CancelledError:
                raise
            except Exception as err:  # API down, RBAC missing: keep the last reading, say so
                self.on_error()
                log.warning("cannot read the Kubernetes API", extra={"error": str(err)})
            await asyncio.sleep(self.config.refresh_interval)
