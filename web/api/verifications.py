"""Customer verifications over the API: run a plugin's identity or credit check, record
a manual one (without a file here; evidence files are uploaded on the screens), and
list a customer's checks, newest first. Business rules live in
core.customers.verification.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from core.customers import verification
from core.customers.rules import CustomerInvalid
from core.security.authz import requires
from web.api import spec
from web.api.openapi import NULLABLE_STRING, ok
from web.errors import ValidationFailed

TAGS = ("customers",)

VERIFICATION_REQUEST = spec.schema(
    "VerificationRequest",
    {
        "type": "object",
        "required": ["kind", "service"],
        "additionalProperties": False,
        "description": 'A plugin service code, or "manual" with `outcome` (and `reference`).',
        "properties": {
            "kind": {"type": "string", "enum": list(verification.KINDS)},
            "service": {"type": "string"},
            "outcome": {"type": "string", "enum": list(verification.OUTCOMES)},
            "reference": NULLABLE_STRING,
        },
    },
)
VERIFICATION = spec.schema(
    "Verification",
    {
        "type": "object",
        "required": ["id", "customer_id", "kind", "service", "outcome", "checked_at"],
        "properties": {
            "id": {"type": "integer"},
            "customer_id": {"type": "integer"},
            "kind": {"type": "string", "enum": list(verification.KINDS)},
            "service": {"type": "string"},
            "outcome": {"type": "string", "enum": list(verification.OUTCOMES)},
            "reference": NULLABLE_STRING,
            "evidence": {"type": "object", "nullable": True},
            "checked_by": NULLABLE_STRING,
            "checked_at": {"type": "string", "format": "date-time"},
        },
    },
)
VERIFICATION_LIST = spec.schema(
    "VerificationList",
    {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": VERIFICATION}},
    },
)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]}, "The request body is not JSON.")
    unknown = sorted(set(body) - {"kind", "service", "outcome", "reference"})
    if unknown:
        raise ValidationFailed({name: ["Unknown field."] for name in unknown})
    if not isinstance(body.get("service"), str) or not body["service"]:
        raise ValidationFailed({"service": ['A service code, or "manual".']})
    return body


@spec.route(
    "/customers/<int:customer_id>/verifications",
    "POST",
    summary="Verify a customer's identity or credit",
    tags=TAGS,
    request_body={
        "required": True,
        "content": {"application/json": {"schema": VERIFICATION_REQUEST}},
    },
    responses={"201": ok("Recorded.", VERIFICATION)},
)
@requires("customers:update")
def create_verification(customer_id: int) -> Response:
    """Runs the plugin service named by `service` for this tenant, or records a manual
    check when `service` is "manual"."""
    body = _body()
    try:
        if body["service"] == verification.MANUAL:
            row = verification.record_manual(
                customer_id, body.get("kind"), body.get("outcome"), body.get("reference")
            )
        else:
            if "outcome" in body or "reference" in body:
                raise ValidationFailed({"outcome": ["Only manual checks give an outcome."]})
            row = verification.verify(customer_id, body.get("kind"), body["service"])
    except CustomerInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    response = jsonify(verification.as_dict(row))
    response.status_code = 201
    return response


@spec.route(
    "/customers/<int:customer_id>/verifications",
    "GET",
    summary="A customer's verifications, newest first",
    tags=TAGS,
    responses={"200": ok("The checks.", VERIFICATION_LIST)},
)
@requires("customers:read")
def list_verifications(customer_id: int) -> Response:
    rows = verification.latest(customer_id)
    return jsonify(items=[verification.as_dict(row) for row in rows])
