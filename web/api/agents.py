"""Agents and customer assignment under /api/v1.

Views parse JSON and call core.agents; an agent outside the caller's hierarchy, like
one of another brokerage, answers 404.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from core.agents import operations, queries, rules
from core.agents.models import Agent
from core.security import scope
from core.security.authz import requires
from web.api import spec
from web.api.openapi import PROBLEM, page
from web.errors import ValidationFailed

_ID = {"type": "integer", "minimum": 1, "maximum": operations.INT_MAX}
_TERRITORIES = {
    "type": "array",
    "maxItems": operations.TERRITORIES_MAX,
    "items": {"type": "string", "minLength": 1, "maxLength": 100},
}
_LICENCE_NUMBER = {"type": "string", "minLength": 1, "maxLength": 50}
_EXPIRES = {
    "type": "string",
    "format": "date",
    "description": "The licence's last valid day (YYYY-MM-DD).",
}

AGENT = spec.schema(
    "Agent",
    {
        "type": "object",
        "required": [
            "id",
            "user_id",
            "email",
            "team_id",
            "licence_number",
            "licence_expires_on",
            "licence_status",
            "can_bind",
            "territories",
            "is_active",
        ],
        "properties": {
            "id": {"type": "integer"},
            "user_id": {"type": "integer"},
            "email": {"type": "string"},
            "team_id": {"type": "integer", "nullable": True},
            "licence_number": {"type": "string"},
            "licence_expires_on": _EXPIRES,
            "licence_status": {"type": "string", "enum": ["valid", "expiring", "expired"]},
            "can_bind": {"type": "boolean", "description": "Active with a valid licence today."},
            "territories": {"type": "array", "items": {"type": "string"}},
            "is_active": {"type": "boolean"},
        },
    },
)
AGENT_PAGE = spec.schema("AgentPage", page(AGENT))
NEW_AGENT = spec.schema(
    "NewAgent",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["user_id", "licence_number", "licence_expires_on"],
        "properties": {
            "user_id": _ID,
            "team_id": {**_ID, "nullable": True},
            "licence_number": _LICENCE_NUMBER,
            "licence_expires_on": _EXPIRES,
            "territories": _TERRITORIES,
        },
    },
)
AGENT_CHANGES = spec.schema(
    "AgentChanges",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "team_id": {**_ID, "nullable": True},
            "licence_number": _LICENCE_NUMBER,
            "licence_expires_on": _EXPIRES,
            "territories": _TERRITORIES,
            "is_active": {"type": "boolean"},
        },
    },
)
ASSIGNMENT = spec.schema(
    "Assignment",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["customer_ids", "agent_id"],
        "properties": {
            "customer_ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": operations.ASSIGN_MAX,
                "items": _ID,
            },
            "agent_id": {**_ID, "nullable": True, "description": "null: assigned to nobody."},
        },
    },
)
ASSIGNED = spec.schema(
    "Assigned",
    {
        "type": "object",
        "required": ["changed"],
        "properties": {
            "changed": {
                "type": "integer",
                "description": "Customers whose agent changed (the others had it already).",
            }
        },
    },
)


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "user_id": agent.user_id,
        "email": agent.email,
        "team_id": agent.team_id,
        "licence_number": agent.licence_number,
        "licence_expires_on": agent.licence_expires_on.isoformat(),
        "licence_status": rules.licence_status(agent),
        "can_bind": rules.can_bind(agent),
        "territories": list(agent.territories),
        "is_active": agent.is_active,
    }


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]}, "The request body is not JSON.")
    return body


def _query_int(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    value = operations.parse_id(raw)
    if value is None:
        raise ValidationFailed({name: ["A positive whole number."]})
    return value


@spec.route(
    "/agents",
    "GET",
    summary="List the agents you may see",
    tags=("agents",),
    responses={
        "200": {
            "description": "A page of agents, by id.",
            "content": {"application/json": {"schema": AGENT_PAGE}},
        },
        "401": PROBLEM,
        "403": PROBLEM,
        "422": PROBLEM,
    },
)
@requires("agents:read")
def list_agents() -> Response:
    """Query: `cursor` (from the previous page), `limit` (1-200, default 50), `team_id`.
    Managers see the agents below the units they manage; administrators see all."""
    limit = _query_int("limit")
    page = queries.list_agents(
        after=_query_int("cursor"),
        limit=limit or queries.PAGE_SIZE,
        team_id=_query_int("team_id"),
    )
    cursor = None if page.next_cursor is None else str(page.next_cursor)
    return jsonify(items=[agent_json(a) for a in page.items], next_cursor=cursor)


@spec.route(
    "/agents",
    "POST",
    summary="Create an agent profile for a user",
    tags=("agents",),
    request_body={"required": True, "content": {"application/json": {"schema": NEW_AGENT}}},
    responses={
        "201": {
            "description": "The new agent.",
            "content": {"application/json": {"schema": AGENT}},
        },
        "401": PROBLEM,
        "403": PROBLEM,
        "422": PROBLEM,
    },
)
@requires("agents:create")
def create_agent() -> tuple[Response, int]:
    try:
        agent = operations.create_agent(_body())
    except operations.AgentInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    return jsonify(agent_json(agent)), 201


@spec.route(
    "/agents/<int:agent_id>",
    "GET",
    summary="One agent",
    tags=("agents",),
    responses={
        "200": {"description": "The agent.", "content": {"application/json": {"schema": AGENT}}},
        "401": PROBLEM,
        "403": PROBLEM,
        "404": PROBLEM,
    },
)
@requires("agents:read")
def get_agent(agent_id: int) -> Response:
    return jsonify(agent_json(scope.get_or_404(Agent, agent_id)))


@spec.route(
    "/agents/<int:agent_id>",
    "PATCH",
    summary="Change an agent",
    tags=("agents",),
    request_body={"required": True, "content": {"application/json": {"schema": AGENT_CHANGES}}},
    responses={
        "200": {"description": "The agent.", "content": {"application/json": {"schema": AGENT}}},
        "401": PROBLEM,
        "403": PROBLEM,
        "404": PROBLEM,
        "422": PROBLEM,
    },
)
@requires("agents:update")
def update_agent(agent_id: int) -> Response:
    """Only the fields sent change. `is_active: false` retires the agent."""
    body = _body()
    try:
        agent = operations.update_agent(agent_id, body)
    except operations.AgentInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    return jsonify(agent_json(agent))


@spec.route(
    "/customers/assign",
    "POST",
    summary="Assign customers to an agent (one or many)",
    tags=("agents", "customers"),
    request_body={"required": True, "content": {"application/json": {"schema": ASSIGNMENT}}},
    responses={
        "200": {
            "description": "Assigned; each change is in the audit trail.",
            "content": {"application/json": {"schema": ASSIGNED}},
        },
        "401": PROBLEM,
        "403": PROBLEM,
        "404": PROBLEM,
        "422": PROBLEM,
    },
)
@requires("customers:update", "agents:read")
def assign_customers() -> Response:
    """Managers and administrators reassign; agents may not. A customer outside your
    reach answers 404 and nothing changes."""
    body = _body()
    errors = {
        name: ["This field is required."]
        for name in ("customer_ids", "agent_id")
        if name not in body
    }
    errors.update(
        {name: ["Unknown field."] for name in body if name not in ("customer_ids", "agent_id")}
    )
    if errors:
        raise ValidationFailed(errors)
    try:
        changed = operations.assign_customers(body["customer_ids"], body["agent_id"])
    except operations.AgentInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    return jsonify(changed=changed)
