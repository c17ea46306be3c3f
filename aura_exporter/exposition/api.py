"""The JSON API under /api/v1: status, entities, one entity's explanation, the OpenAPI document.

Answers follow the Prometheus HTTP API's envelope: {"status": "success", "data": ...}, or
{"status": "error", "errorType": ..., "error": ...} with a 4xx/5xx code for every bad request,
unknown route or wrong method under /api/v1, never an HTML page or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web

from aura_exporter import __version__
from aura_exporter.council import DECISIONS
from aura_exporter.exposition.openapi import openapi_document
from aura_exporter.exposition.status import AnalysesStatus
from aura_exporter.exposition.views import (
    ID_LENGTH,
    entity_detail,
    entity_id,
    entity_summary,
    graph_detail,
    graph_summary,
)
from aura_exporter.snapshot import AnalysisResult, Snapshot
from aura_exporter.sources.kubernetes import ClusterTopology

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_LIMIT = 10000
# What /api/v1/entities sorts by (highest first; missing counts as 0), read from the result's arrays so
# that only the `limit` entities returned are ever turned into JSON.
SORT_KEYS: dict[str, Callable[[AnalysisResult], np.ndarray]] = {
    "risk": lambda result: result.verdict.risk,
    "drift": lambda result: result.topology.drift_zscore,
    "isolation": lambda result: result.topology.fleet.isolation,
}


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def success(data: Any) -> web.Response:
    return web.json_response({"status": "success", "data": data})


def failure(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"status": "error", "errorType": kind, "error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Under /api/v1 every failure is a JSON error body, whatever raised it."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as err:
        return failure(err.status, err.kind, err.message)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        if err.status == 404:
            return failure(404, "not_found", "no such API endpoint; see /api/v1/openapi.json")
        answer = failure(err.status, "bad_request", err.reason)
        if "Allow" in err.headers:  # a 405 says which methods would do (RFC 9110)
            answer.headers["Allow"] = err.headers["Allow"]
        return answer
    except Exception:
        log.exception("API request failed", extra={"path": request.path})
        return failure(500, "internal", "internal error; see the exporter's log")


class EntityIndex:
    """Entity ids of one snapshot, computed once per snapshot."""

    def __init__(self) -> None:
        self._version = -1
        self._ids: dict[tuple[str, str], int] = {}

    def find(self, snapshot: Snapshot, analysis: str, identifier: str) -> int | None:
        if snapshot.version != self._version:
            self._ids = {
                (name, entity_id(name, result.entity_labels(i))): i
                for name, result in snapshot.results.items() for i in range(len(result.windows.entities))
            }
            self._version = snapshot.version
        return self._ids.get((analysis, identifier))


class Api:
    def __init__(self, snapshot: Callable[[], Snapshot], status: Callable[[], AnalysesStatus],
                 cluster: Callable[[], ClusterTopology | None] = lambda: None):
        self.snapshot = snapshot
        self.status_now = status
        self.cluster = cluster
        self.index = EntityIndex()

    def routes(self, app: web.Application) -> None:
        app.router.add_get(f"{PREFIX}/status", self.status)
        app.router.add_get(f"{PREFIX}/openapi.json", self.openapi)
        app.router.add_get(f"{PREFIX}/entities", self.entities)
        app.router.add_get(f"{PREFIX}/entities/{{analysis}}/by-labels", self.entity_by_labels)
        app.router.add_get(f"{PREFIX}/entities/{{analysis}}/{{id}}", self.entity)
        app.router.add_get(f"{PREFIX}/graphs", self.graphs)
        app.router.add_get(f"{PREFIX}/graphs/{{analysis}}", self.graph)

    async def status(self, request: web.Request) -> web.Response:
        snapshot, status = self.snapshot(), self.status_now()
        return success({"version": __version__,
                        "analyses": [self._state(snapshot, status, name) for name in status.names]})

    @staticmethod
    def _state(snapshot: Snapshot, status: AnalysesStatus, name: str) -> dict[str, Any]:
        result, graph = snapshot.results.get(name), snapshot.graphs.get(name)
        state: dict[str, Any] = {"name": name, "entities": 0, "data_time": None, "model_ready": False,
                                 "last_error": status.last_errors.get(name)}
        if result is not None:
            state.update(entities=len(result.windows.entities), data_time=result.data_time,
                         model_ready=result.model_ready)
        elif graph is not None:
            state.update(entities=len(graph.outcome.graph.services), data_time=graph.data_time,
                         model_ready=graph.outcome.ready)
        return state

    async def graphs(self, request: web.Request) -> web.Response:
        return success({"graphs": [graph_summary(g) for g in self.snapshot().graphs.values()]})

    async def graph(self, request: web.Request) -> web.Response:
        return success(graph_detail(self._latest(request.match_info["analysis"], graph=True)))

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(__version__))

    async def entities(self, request: web.Request) -> web.Response:
        query = request.query
        wanted = query.get("analysis")
        if wanted is not None and wanted not in self.status_now().names:
            raise ApiError(404, "not_found", f"unknown analysis {wanted!r}")
        decision = query.get("decision")
        if decision is not None and decision not in DECISIONS:
            raise ApiError(400, "bad_data", f"decision must be one of {', '.join(DECISIONS)}")
        sort = query.get("sort", "risk")
        if sort not in SORT_KEYS:
            raise ApiError(400, "bad_data", f"sort must be one of {', '.join(SORT_KEYS)}")
        limit = _limit(query.get("limit"))
        results = [result for name, result in self.snapshot().results.items() if wanted in (None, name)]
        rows = [np.flatnonzero(result.verdict.decision == DECISIONS.index(decision)) if decision is not None
                else np.arange(len(result.windows.entities)) for result in results]
        owner = np.concatenate([np.full(len(r), n) for n, r in enumerate(rows)] or [np.zeros(0, dtype=int)])
        row = np.concatenate(rows or [np.zeros(0, dtype=int)])
        values = np.concatenate([SORT_KEYS[sort](result)[r] for result, r in zip(results, rows, strict=True)]
                                or [np.zeros(0)])
        order = np.argsort(-np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0), kind="stable")[:limit]
        return success({"total": len(row), "entities": [entity_summary(results[owner[k]], int(row[k])) for k in order]})

    async def entity(self, request: web.Request) -> web.Response:
        result = self._result(request.match_info["analysis"])
        identifier = request.match_info["id"]
        if len(identifier) != ID_LENGTH or any(c not in "0123456789abcdef" for c in identifier):
            raise ApiError(400, "bad_data", f"an entity id is {ID_LENGTH} lowercase hex digits")
        index = self.index.find(self.snapshot(), result.analysis.name, identifier)
        if index is None:
            raise ApiError(404, "not_found", "no such entity in the latest cycle")
        return success(entity_detail(result, index, self.cluster()))

    async def entity_by_labels(self, request: web.Request) -> web.Response:
        """The entity whose labels are given as query parameters; others (an alert's job, …) are ignored."""
        result = self._result(request.match_info["analysis"])
        names = result.windows.label_names
        missing = [n for n in names if n not in request.query]
        if missing:
            raise ApiError(400, "bad_data", f"missing entity label(s) {', '.join(missing)}")
        key = tuple(request.query[n] for n in names)
        try:
            index = result.windows.entities.index(key)
        except ValueError:
            raise ApiError(404, "not_found", "no such entity in the latest cycle") from None
        return success(entity_detail(result, index, self.cluster()))

    def _result(self, analysis: str) -> AnalysisResult:
        return self._latest(analysis, graph=False)

    def _latest(self, analysis: str, graph: bool):
        """The latest result of a metrics analysis or (`graph`) of a graph analysis."""
        if analysis not in self.status_now().names:
            raise ApiError(404, "not_found", f"unknown analysis {analysis!r}")
        snapshot = self.snapshot()
        wanted, other = (snapshot.graphs, snapshot.results) if graph else (snapshot.results, snapshot.graphs)
        if analysis in other:
            where = f"{PREFIX}/entities" if graph else f"{PREFIX}/graphs/{analysis}"
            raise ApiError(404, "not_found", f"analysis {analysis!r} is {'not ' if graph else ''}a graph: see {where}")
        result = wanted.get(analysis)
        if result is None:
            raise ApiError(503, "unavailable", f"analysis {analysis!r} has no recent complete cycle")
        return result


def _limit(value: str | None) -> int:
    if value is None:
        return MAX_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise ApiError(400, "bad_data", f"limit must be a whole number, not {value[:40]!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "bad_data", f"limit must be between 1 and {MAX_LIMIT}")
    return limit
