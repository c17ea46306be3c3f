"""Topology stage: windows → persistence diagrams → Betti numbers, entropy, drift, fleet shape."""

from aura_exporter.topology.stage import Topology, TopologyStage

__all__ = ["Topology", "TopologyStage"]
