"""The products a brokerage sells, as integrators and forms need them.

`GET /products` lists the enabled products with their risk schema (each field's name,
label, type, whether it is required, its choices and help) from the line's plugin, the
coverages on offer, and the rate table version in force today. It is the catalogue a
quoting caller works from, so it needs `policies:create` (agents hold it; they do not
hold `products:read`, which is for managing the catalogue).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, jsonify

from core.products import lines, queries
from core.products.models import Product
from core.products.rating import table_of
from core.security.authz import requires
from web.api import spec
from web.api.openapi import STRING, ok

TAGS = ("products",)

RISK_FIELD = spec.schema(
    "RiskField",
    {
        "type": "object",
        "required": ["name", "label", "type", "required", "choices"],
        "properties": {
            "name": STRING,
            "label": STRING,
            "type": {
                "type": "string",
                "enum": ["text", "integer", "decimal", "money", "date", "boolean", "choice"],
                "description": "money and decimal: send decimal strings.",
            },
            "required": {"type": "boolean"},
            "choices": {"type": "array", "items": STRING},
            "help": STRING,
        },
    },
)
PRODUCT = spec.schema(
    "Product",
    {
        "type": "object",
        "required": ["code", "name", "risk_fields"],
        "properties": {
            "id": {"type": "integer"},
            "code": {**STRING, "description": "The `product` of POST /quotes."},
            "name": STRING,
            "plugin": STRING,
            "risk_fields": {"type": "array", "items": RISK_FIELD},
            "coverages": {"type": "array", "items": {"type": "object"}},
            "rate_table_version": {
                **STRING,
                "nullable": True,
                "description": "In force today; null when no version is in force yet.",
            },
            "grace_days": {"type": "object", "additionalProperties": {"type": "integer"}},
            "revival_years": {"type": "integer", "nullable": True},
        },
    },
)
PRODUCT_LIST = spec.schema(
    "ProductList",
    {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": PRODUCT}},
    },
)


def product_json(product: Product, declared: lines.DeclaredLine) -> dict[str, Any]:
    version = queries.version_in_force(product.id, date.today())
    return {
        "id": product.id,
        "code": product.line_code,
        "name": product.name,
        "plugin": declared.plugin,
        "risk_fields": lines.risk_schema(declared.line),
        "coverages": lines.coverages(declared.line),
        "rate_table_version": table_of(version, declared).version if version else None,
        "grace_days": product.grace_days,
        "revival_years": product.revival_years,
    }


def enabled_products() -> list[tuple[Product, lines.DeclaredLine]]:
    """Enabled products whose line a plugin of the tenant still declares."""
    declared = lines.declared()
    return [
        (product, declared[product.line_code])
        for product in queries.products(active_only=True)
        if product.line_code in declared
    ]


@spec.route(
    "/products",
    "GET",
    summary="The products on sale, with their risk fields",
    tags=TAGS,
    responses={"200": ok("The enabled products.", PRODUCT_LIST)},
)
@requires("policies:create")
def list_products() -> Response:
    return jsonify(items=[product_json(p, d) for p, d in enabled_products()])
