"""The OpenAPI 3.0 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from aura_exporter.config.model import EVIDENCE_KINDS
from aura_exporter.council import AGENTS, DECISIONS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _number_or_null(description: str) -> dict[str, Any]:
    return {"type": "number", "nullable": True, "description": description}


def _success(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["status", "data"],
        "properties": {"status": {"type": "string", "enum": ["success"]}, "data": schema}}}}}


def _errors(*codes: int, **reasons: str) -> dict[str, Any]:
    """Error answers with their usual reasons; `reasons` ("e503": ...) says what a code means on this path."""
    usual = {400: "Malformed request (in plain text when the HTTP server refuses it: a request line or header "
                  "longer than 8,190 bytes).",
             403: "A browser's request from another site's page.",
             404: "Unknown analysis, entity or endpoint, or an analysis of the other kind.",
             426: "Not a WebSocket handshake.", 503: "The analysis has no recent complete cycle."}
    return {str(code): {"description": reasons.get(f"e{code}", usual[code]), "content": _error_content(code)}
            for code in codes}


def _error_content(code: int) -> dict[str, Any]:
    """JSON, and for 400 plain text too: aiohttp's own answer to a request it refuses before any route runs."""
    content: dict[str, Any] = {"application/json": {"schema": _ref("Error")}}
    if code == 400:
        content["text/plain"] = {"schema": {"type": "string"}}
    return content


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["status", "errorType", "error"], "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "errorType": {"type": "string"}, "error": {"type": "string"}}},
    "EntitySummary": {"type": "object", "required": ["id", "analysis", "labels", "decision"], "properties": {
        "id": {"type": "string", "description": "Stable id: a hash of the analysis and the label set."},
        "analysis": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "risk": _number_or_null("The council's risk, 0..1."),
        "usual_per_week": _number_or_null("With a page budget: how many times a week normal behaviour is at "
                                          "least this unusual, per entity (the fleet's or the entity's own: "
                                          "council.budget_scope); null without one or while it learns."),
        "decision": {"type": "string", "enum": list(DECISIONS)},
        "agents": {"type": "object", "additionalProperties": {"type": "number", "nullable": True},
                   "description": "Each agent's score; null while it abstains. Agents: "
                                  + ", ".join(a.name for a in AGENTS) + "."},
        "drift_zscore": _number_or_null("Topological drift against the entity's own norm."),
        "isolation": _number_or_null("Distance from the fleet's majority, in baseline units."),
        "betti": {"type": "object", "additionalProperties": {"type": "integer"}}}},
    "Explanation": {"type": "object", "properties": {
        "decision": {"type": "string", "enum": list(DECISIONS)},
        "risk": {"type": "number"},
        "summary": {"type": "string", "description": "One line for people: the decision and its main reasons."},
        "agents": {"type": "array", "items": {"type": "object", "properties": {
            "agent": {"type": "string"}, "score": {"type": "number", "nullable": True},
            "vote": {"type": "boolean", "nullable": True}}}},
        "contributions": {"type": "array", "items": {"type": "object", "properties": {
            "agent": {"type": "string"},
            "kind": {"type": "string", "enum": list(EVIDENCE_KINDS)},
            "feature": {"type": "string", "nullable": True}, "value": {"type": "number", "nullable": True},
            "score": {"type": "number"}, "text": {"type": "string"}}}},
        "topology": {"type": "array", "items": {"type": "object", "properties": {
            "dimension": {"type": "integer"}, "birth": {"type": "number"}, "death": {"type": "number"},
            "persistence": {"type": "number"}, "interpretation": {"type": "string"}}}},
        "breaches": {"type": "array", "items": {"type": "object", "properties": {
            "feature": {"type": "string"}, "limit": {"type": "number"}, "probability": {"type": "number"},
            "seconds": {"type": "number", "nullable": True}}}},
        "actions": {"type": "array", "items": {"type": "string"}},
        "usual_per_week": {"type": "number", "nullable": True}}},
    "EntityDetail": {"allOf": [_ref("EntitySummary"), {"type": "object", "properties": {
        "data_time": {"type": "number", "description": "Unix time of the window's end."},
        "model_ready": {"type": "boolean"},
        "explanation": _ref("Explanation"),
        "diagrams": {"type": "object", "description": "Persistence pairs [birth, death] per homology dimension.",
                     "additionalProperties": {"type": "array", "items": {
                         "type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}}},
        "noise_threshold": {"type": "number"},
        "forecast": {"type": "object", "nullable": True, "additionalProperties": {"type": "object"}}}}]},
    "GraphSummary": {"type": "object", "required": ["analysis", "services", "edges", "betti", "summary"],
                     "properties": {
        "analysis": {"type": "string"}, "data_time": {"type": "number"},
        "ready": {"type": "boolean", "description": "The baseline was learned before this graph."},
        "services": {"type": "integer"}, "edges": {"type": "integer"},
        "betti": {"type": "object", "additionalProperties": {"type": "integer"},
                  "description": "0: parts of the graph; 1: independent request loops."},
        "drift": {"type": "object", "additionalProperties": {"type": "number", "nullable": True}},
        "new_loops": {"type": "integer"}, "cut_off_services": {"type": "integer"},
        "edges_appeared": {"type": "integer"}, "edges_vanished": {"type": "integer"},
        "summary": {"type": "string", "description": "One line for people: the findings, worst first."}}},
    "GraphDetail": {"allOf": [_ref("GraphSummary"), {"type": "object", "properties": {
        "baseline_learned_at": {"type": "number"},
        "weight": {"type": "string", "enum": ["strength", "distance"]},
        "skipped": {"type": "object", "additionalProperties": {"type": "integer"}},
        "nodes": {"type": "array", "items": {"type": "object", "properties": {
            "service": {"type": "string"}, "part": {"type": "integer", "description": "0: the main part."}}}},
        "links": {"type": "array", "items": {"type": "object", "properties": {
            "caller": {"type": "string"}, "callee": {"type": "string"}, "weight": {"type": "number"},
            "level": {"type": "number", "description": "Filtration level: when the edge enters (strong first)."},
            "loop_level": _number_or_null("Level at which the edge first lies on a loop; null if never.")}}},
        "diagrams": {"type": "object", "description": "Pairs [birth, death] per dimension; death null: never dies.",
                     "additionalProperties": {"type": "array", "items": {"type": "array", "items": {
                         "type": "number", "nullable": True}, "minItems": 2, "maxItems": 2}}},
        "loops": {"type": "array", "items": {"type": "object", "properties": {
            "services": {"type": "array", "items": {"type": "string"}}, "weakest_link": {"type": "number"},
            "new": {"type": "boolean"}}}},
        "cuts": {"type": "array", "items": {"type": "object", "properties": {
            "services": {"type": "array", "items": {"type": "string"}}, "vanished": {"type": "boolean"}}}},
        "changes": {"type": "array", "items": {"type": "object", "properties": {
            "caller": {"type": "string"}, "callee": {"type": "string"}, "weight": {"type": "number"},
            "appeared": {"type": "boolean"}}}},
        "actions": {"type": "array", "items": {"type": "string"}}}}]},
    "DecisionEvent": {"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string", "enum": ["hello", "current", "decision"]},
        "analysis": {"type": "string"}, "id": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "decision": {"type": "string", "enum": list(DECISIONS)},
        "previous": {"type": "string", "nullable": True, "enum": [*DECISIONS, None]},
        "risk": {"type": "number"}, "summary": {"type": "string"}, "time": {"type": "number"}}},
}


def openapi_document(version: str) -> dict[str, Any]:
    entity_detail = _success(_ref("EntityDetail"), "The entity, its explanation, diagrams and forecast.")
    return {
        "openapi": "3.0.3",
        "info": {"title": "AURA exporter API", "version": version,
                 "description": "Read-only views of the latest analysis cycle. Explanations are free text "
                                "and are never exported as label values."},
        "paths": {
            "/api/v1/status": {"get": {
                "summary": "Each analysis' state.", "operationId": "status",
                "responses": {"200": _success({"type": "object"}, "Version and analyses.")}}},
            "/api/v1/entities": {"get": {
                "summary": "Entities of the latest cycles, riskiest first.", "operationId": "listEntities",
                "parameters": [
                    _query("analysis", {"type": "string"}, "Only this analysis."),
                    _query("decision", {"type": "string", "enum": list(DECISIONS)}, "Only this decision."),
                    _query("sort", {"type": "string", "enum": ["risk", "drift", "isolation"], "default": "risk"},
                           "Order, highest first."),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "At most this many."),
                ],
                "responses": {"200": _success({"type": "object", "properties": {
                    "total": {"type": "integer"},
                    "entities": {"type": "array", "items": _ref("EntitySummary")}}}, "The entities."),
                    **_errors(400, 404)}}},
            "/api/v1/entities/{analysis}/{id}": {"get": {
                "summary": "One entity by id.", "operationId": "getEntity",
                "parameters": [_path("analysis", "Analysis name."), _path("id", "Entity id from the list.")],
                "responses": {"200": entity_detail, **_errors(400, 404, 503)}}},
            "/api/v1/entities/{analysis}/by-labels": {"get": {
                "summary": "One entity by its labels, given as query parameters (as in an alert's labels); "
                           "parameters that are not entity labels of the analysis are ignored.",
                "operationId": "getEntityByLabels",
                "parameters": [_path("analysis", "Analysis name.")],
                "responses": {"200": entity_detail, **_errors(400, 404, 503)}}},
            "/api/v1/graphs": {"get": {
                "summary": "Each graph analysis' latest service graph, in short.", "operationId": "listGraphs",
                "responses": {"200": _success({"type": "object", "properties": {
                    "graphs": {"type": "array", "items": _ref("GraphSummary")}}}, "The graphs.")}}},
            "/api/v1/graphs/{analysis}": {"get": {
                "summary": "One graph analysis' service graph: services, edges, diagrams and named findings.",
                "operationId": "getGraph",
                "parameters": [_path("analysis", "Name of an analysis of kind graph.")],
                "responses": {"200": _success(_ref("GraphDetail"), "The graph."), **_errors(400, 404, 503)}}},
            "/api/v1/decisions": {"get": {
                "summary": "WebSocket feed of decisions: a hello, the current non-monitor decisions, then "
                           "every change as it is published. Messages are DecisionEvent objects.",
                "operationId": "decisionFeed",
                "responses": {"101": {"description": "Switching to the WebSocket protocol."},
                              **_errors(403, 426, 503, e503="The feed serves as many clients as it can.")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document.", "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.0 document.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": SCHEMAS},
    }
