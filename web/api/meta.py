"""Endpoints about the API itself: its description and a liveness check per tenant."""

from __future__ import annotations

from flask import Response, g, jsonify

from core.security.authz import public
from web.api import bp, spec

PING = spec.schema(
    "Ping",
    {
        "type": "object",
        "required": ["status", "tenant"],
        "properties": {
            "status": {"type": "string", "enum": ["ok"]},
            "tenant": {"type": "string", "description": "The slug of the host's brokerage."},
        },
    },
)


@spec.route(
    "/ping",
    "GET",
    summary="Check the API answers for this brokerage",
    tags=("meta",),
    public=True,
    responses={
        "200": {"description": "The API is up.", "content": {"application/json": {"schema": PING}}}
    },
)
@public
def ping() -> Response:
    return jsonify(status="ok", tenant=g.tenant.slug)


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    """The OpenAPI 3 document of this API (not itself part of the document)."""
    return jsonify(spec.document())
