"""Quotes over the API: price a risk for a customer, read a quote back.

`POST /quotes` takes `{"product", "customer_id", "start_date", "risk"}` (and optionally
`agent_id`) and answers 201 with the premium as a decimal string and the trace of
every rating step. The risk's fields are the product's (`GET /products` lists them).
Numbers in the body are read exactly: `800000.50` is the decimal 800000.50, never a
float. A 422 names every bad field at once: `product`, `customer_id`, `start_date`,
`agent_id`, and each risk field as `risk.<name>` (`risk.zone`, `risk.agreed_value`).
A customer outside the caller's reach is 404, as is a quote of such a customer.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask import Response, jsonify, request

from core.policies import quotes
from core.policies.models import QUOTE_STATUSES, Quote
from core.products.rules import ProductInvalid
from core.security.authz import requires
from web.api import spec
from web.api.openapi import STRING, ok
from web.errors import ValidationFailed

TAGS = ("quotes",)
_DECIMAL = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "A decimal amount."}
FIELDS = ("product", "customer_id", "start_date", "risk", "agent_id")
REQUIRED = ("product", "customer_id", "start_date", "risk")

NEW_QUOTE = spec.schema(
    "NewQuote",
    {
        "type": "object",
        "required": list(REQUIRED),
        "additionalProperties": False,
        "properties": {
            "product": {**STRING, "description": "A product line code, e.g. motor_private_car."},
            "customer_id": {"type": "integer"},
            "start_date": {**STRING, "format": "date"},
            "risk": {
                "type": "object",
                "description": "The product's risk fields (GET /products); amounts as "
                'decimal strings ("800000") or integers. Errors name them `risk.<field>`.',
            },
            "agent_id": {
                "type": "integer",
                "description": "Default: the customer's agent. Only those who manage "
                "customers may name another.",
            },
        },
    },
)
RATING_STEP = spec.schema(
    "RatingStep",
    {
        "type": "object",
        "required": ["name", "label", "factor", "sign", "inputs", "result", "rate_table_version"],
        "properties": {
            "name": {**STRING, "description": "Stable across tariff versions."},
            "label": STRING,
            "factor": {**STRING, "description": 'The rating factor in words ("35%").'},
            "sign": {
                "type": "integer",
                "enum": [-1, 0, 1],
                "description": "+1 added to the premium, -1 subtracted, 0 an intermediate.",
            },
            "inputs": {"type": "object", "description": "Decimals as strings."},
            "result": {**STRING, "description": "A decimal string."},
            "rate_table_version": STRING,
        },
    },
)
QUOTE = spec.schema(
    "Quote",
    {
        "type": "object",
        "required": [
            "id",
            "product",
            "customer_id",
            "start_date",
            "premium",
            "currency",
            "trace",
            "rate_table_version",
            "status",
        ],
        "properties": {
            "id": {"type": "integer"},
            "product": STRING,
            "customer_id": {"type": "integer"},
            "agent_id": {"type": "integer", "nullable": True},
            "start_date": {**STRING, "format": "date"},
            "risk": {"type": "object", "description": "The risk as rated."},
            "premium": {**_DECIMAL, "description": "Annual premium before tax."},
            "currency": STRING,
            "trace": {"type": "array", "items": RATING_STEP},
            "rate_table_version": STRING,
            "product_version_id": {"type": "integer"},
            "status": {"type": "string", "enum": list(QUOTE_STATUSES)},
            "created_at": {**STRING, "format": "date-time"},
        },
    },
)


def quote_json(quote: Quote) -> dict[str, Any]:
    return {
        "id": quote.id,
        "product": quote.line_code,
        "customer_id": quote.customer_id,
        "agent_id": quote.agent_id,
        "start_date": quote.start_date.isoformat(),
        "risk": quote.risk,
        "premium": f"{quote.premium:.2f}",
        "currency": quote.currency,
        "trace": quote.trace,
        "rate_table_version": quote.rate_table_version,
        "product_version_id": quote.product_version_id,
        "status": quote.status,
        "created_at": quote.created_at.isoformat() if quote.created_at else None,
    }


def _body() -> dict[str, Any]:
    """The JSON body with its numbers read as Decimals (a float would lose cents)."""
    try:
        body = json.loads(request.get_data(cache=True) or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]}, "The request body is not JSON.")
    errors = {name: ["Unknown field."] for name in sorted(set(body) - set(FIELDS))}
    errors |= {name: ["This field is required."] for name in REQUIRED if body.get(name) is None}
    customer_id = body.get("customer_id")
    if customer_id is not None and (
        isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0
    ):
        errors["customer_id"] = ["Must be a customer's id."]
    if body.get("product") is not None and not isinstance(body["product"], str):
        errors["product"] = ["Must be a product line code."]
    if body.get("risk") is not None and not isinstance(body["risk"], dict):
        errors["risk"] = ["Must be an object of the product's risk fields."]
    if errors:
        raise ValidationFailed(errors)
    return body


@spec.route(
    "/quotes",
    "POST",
    summary="Quote a risk for a customer",
    tags=TAGS,
    request_body={"required": True, "content": {"application/json": {"schema": NEW_QUOTE}}},
    responses={
        "201": ok("Quoted.", QUOTE),
        "404": {"description": "The customer is not within the caller's reach."},
        "422": {"description": "Each bad field named; risk fields as `risk.<field>`."},
    },
)
@requires("policies:create")
def create_quote() -> Response:
    """Rates the risk on the product version in force on `start_date` (within a year of
    today) and stores the quote with its trace; replaying the trace gives the same
    premium to the cent."""
    body = _body()
    try:
        quote = quotes.create_quote(
            customer_id=body["customer_id"],
            line_code=body["product"],
            start_date=body["start_date"],
            risk=body["risk"],
            agent_id=body.get("agent_id"),
        )
    except ProductInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    response = jsonify(quote_json(quote))
    response.status_code = 201
    response.headers["Location"] = f"{request.base_url.rstrip('/')}/{quote.id}"
    return response


@spec.route(
    "/quotes/<int:quote_id>",
    "GET",
    summary="Read a quote",
    tags=TAGS,
    responses={"200": ok("The quote.", QUOTE)},
)
@requires("policies:read")
def get_quote(quote_id: int) -> Response:
    return jsonify(quote_json(quotes.get_quote(quote_id)))
