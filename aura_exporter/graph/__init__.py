"""Dependency topology: the service graph of edge metrics (a mesh's or a tracing pipeline's), its
persistent homology (partitions in H0, circular dependencies in H1) and named findings."""

from aura_exporter.graph.stage import GraphOutcome, GraphStage

__all__ = ["GraphOutcome", "GraphStage"]
