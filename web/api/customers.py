"""Customers over the API: create (with the duplicate check), read, update, soft
delete, search with keyset pages, merge and unmerge, GDPR export.

Views parse the request and call core.customers; personal data in answers is masked
per the caller's permissions (core.customers.queries.visible).

Duplicates: `POST /customers` answers 409 (problem+json, `duplicates` listing the
likely twins the caller may see, each with its reasons) when the new customer looks
like one on file. Send the same request with `?force=true` to save it anyway.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import Conflict

from core.customers import operations, queries
from core.customers.models import CHANNELS, KINDS, KYC_STATUSES, STATUSES
from core.customers.rules import ADDRESS_FIELDS, SETTABLE_STATUSES, CustomerInvalid
from core.security.authz import requires
from web.api import spec
from web.api.openapi import NULLABLE_STRING, STRING, json_content, ok, page
from web.errors import PROBLEM_MIMETYPE, ValidationFailed

TAGS = ("customers",)

ADDRESS = {
    "type": "object",
    "nullable": True,
    "additionalProperties": False,
    "properties": {name: NULLABLE_STRING for name in ADDRESS_FIELDS},
}
CONTACT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"label": NULLABLE_STRING, "email": NULLABLE_STRING, "phone": NULLABLE_STRING},
}
_INPUT_PROPERTIES: dict[str, Any] = {
    "kind": {"type": "string", "enum": list(KINDS)},
    "first_name": NULLABLE_STRING,
    "last_name": NULLABLE_STRING,
    "date_of_birth": {**NULLABLE_STRING, "format": "date"},
    "company_name": NULLABLE_STRING,
    "registration_number": NULLABLE_STRING,
    "national_id": NULLABLE_STRING,
    "email": {**NULLABLE_STRING, "format": "email"},
    "phone": NULLABLE_STRING,
    "preferred_channel": {**NULLABLE_STRING, "enum": [*CHANNELS, None]},
    "address": ADDRESS,
    "marketing_consent": {"type": "boolean"},
    "kyc_status": {"type": "string", "enum": list(KYC_STATUSES)},
    "notes": NULLABLE_STRING,
    "tags": {"type": "array", "items": STRING},
    "agent_id": {"type": "integer", "nullable": True},
    "status": {"type": "string", "enum": list(SETTABLE_STATUSES)},
    "contacts": {"type": "array", "items": CONTACT},
}
NEW_CUSTOMER = spec.schema(
    "NewCustomer",
    {
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "description": "People need first_name and last_name; companies company_name.",
        "properties": _INPUT_PROPERTIES,
    },
)
CUSTOMER_CHANGES = spec.schema(
    "CustomerChanges",
    {
        "type": "object",
        "additionalProperties": False,
        "description": "Only the fields to change; null clears a field.",
        "properties": _INPUT_PROPERTIES,
    },
)
CUSTOMER = spec.schema(
    "Customer",
    {
        "type": "object",
        "description": "Personal data is masked unless the caller holds customers:export.",
        "required": ["id", "kind", "name", "status"],
        "properties": {
            **_INPUT_PROPERTIES,
            "id": {"type": "integer"},
            "name": STRING,
            "status": {"type": "string", "enum": list(STATUSES)},
            "merged_into": {"type": "integer", "nullable": True},
            "consent_at": {**NULLABLE_STRING, "format": "date-time"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "date_of_birth": NULLABLE_STRING,
            "email": NULLABLE_STRING,
            "contacts": {"type": "array", "items": {"type": "object"}},
        },
    },
)
CUSTOMER_PAGE = spec.schema("CustomerPage", page(CUSTOMER))
MERGE_REQUEST = spec.schema(
    "MergeRequest",
    {
        "type": "object",
        "required": ["drop_id"],
        "properties": {"drop_id": {"type": "integer", "description": "Merged into this one."}},
    },
)
MERGE_RESULT = spec.schema(
    "MergeResult",
    {
        "type": "object",
        "required": ["audit_entry_id", "customer"],
        "properties": {
            "audit_entry_id": {"type": "integer", "description": "Undo with /customers/unmerge."},
            "customer": CUSTOMER,
        },
    },
)
UNMERGE_REQUEST = spec.schema(
    "UnmergeRequest",
    {
        "type": "object",
        "required": ["audit_entry_id"],
        "properties": {"audit_entry_id": {"type": "integer"}},
    },
)


def _invalid(exc: CustomerInvalid) -> ValidationFailed:
    return ValidationFailed(exc.errors)


def _body() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]}, "The request body is not JSON.")
    return body


def _flag(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ValidationFailed({name: ["Must be true or false."]})
    return value in ("true", "1")


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or int(value) >= 2**31:
        raise ValidationFailed({name: ["Must be a whole number."]})
    return int(value)


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ValidationFailed({name: ["Must be a whole number."]})
    return value


def _duplicates(found: operations.DuplicatesFound) -> Response:
    response = jsonify(
        {
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": "This customer looks like one already on file. "
            "Send the request again with ?force=true to save it anyway.",
            "duplicates": [
                {**queries.brief(d.customer), "reasons": list(d.reasons)} for d in found.duplicates
            ],
        }
    )
    response.status_code = 409
    response.mimetype = PROBLEM_MIMETYPE
    return response


@spec.route(
    "/customers",
    "POST",
    summary="Create a customer",
    tags=TAGS,
    request_body={"required": True, **json_content(NEW_CUSTOMER)},
    responses={
        "201": ok("Created.", CUSTOMER),
        "409": {"description": "Likely duplicates; `?force=true` saves anyway."},
    },
)
@requires("customers:create")
def create_customer() -> Response:
    """Answers 409 with `duplicates` when the customer looks like one on file (a similar
    name and the same date of birth, or the same email, phone, national id or
    registration number); `?force=true` creates it regardless."""
    force = _flag("force")
    try:
        customer = operations.create(_body(), force=force)
    except CustomerInvalid as exc:
        raise _invalid(exc) from None
    except operations.DuplicatesFound as found:
        return _duplicates(found)
    response = jsonify(queries.visible(customer))
    response.status_code = 201
    response.headers["Location"] = f"{request.base_url.rstrip('/')}/{customer.id}"
    return response


@spec.route(
    "/customers",
    "GET",
    summary="Search customers (keyset pages)",
    tags=TAGS,
    responses={"200": ok("A page of customers.", CUSTOMER_PAGE)},
)
@requires("customers:read")
def list_customers() -> Response:
    """`q` searches names, email, phone, registration number, (exactly) the national
    id and policy numbers: a name-shaped `q` finds the names that begin with it, then
    the surnames that do; only if none do, its words anywhere
    (core.customers.queries.search).
    `agent_id`, `status` and `tag` filter; `cursor` is the previous page's
    `next_cursor`; `limit` up to 200."""
    try:
        filters = queries.Filters(
            q=request.args.get("q"),
            agent_id=_int_arg("agent_id"),
            status=request.args.get("status") or None,
            tag=request.args.get("tag") or None,
        )
        page = queries.search(
            filters,
            cursor=request.args.get("cursor") or None,
            limit=_int_arg("limit") or queries.PAGE_SIZE,
        )
    except CustomerInvalid as exc:
        raise _invalid(exc) from None
    return jsonify(
        items=[queries.visible(customer) for customer in page.items],
        next_cursor=page.next_cursor,
    )


@spec.route(
    "/customers/<int:customer_id>",
    "GET",
    summary="Read a customer",
    tags=TAGS,
    responses={"200": ok("The customer.", CUSTOMER)},
)
@requires("customers:read")
def get_customer(customer_id: int) -> Response:
    return jsonify(queries.visible(queries.get(customer_id)))


@spec.route(
    "/customers/<int:customer_id>",
    "PATCH",
    summary="Change a customer",
    tags=TAGS,
    request_body={"required": True, **json_content(CUSTOMER_CHANGES)},
    responses={"200": ok("The changed customer.", CUSTOMER)},
)
@requires("customers:update")
def update_customer(customer_id: int) -> Response:
    try:
        customer = operations.update(customer_id, _body())
    except CustomerInvalid as exc:
        raise _invalid(exc) from None
    return jsonify(queries.visible(customer))


@spec.route(
    "/customers/<int:customer_id>",
    "DELETE",
    summary="Delete a customer (soft)",
    tags=TAGS,
    responses={"204": {"description": "Deleted: gone from lists and lookups."}},
)
@requires("customers:delete")
def delete_customer(customer_id: int) -> Response:
    operations.delete(customer_id)
    return Response(status=204)


@spec.route(
    "/customers/<int:customer_id>/export",
    "GET",
    summary="Export a customer's personal data (GDPR)",
    tags=TAGS,
    responses={"200": {"description": "Every tagged value, decrypted.", **json_content({})}},
)
@requires("customers:export")
def export_customer(customer_id: int) -> Response:
    """A JSON download, audited as gdpr.export."""
    response = jsonify(operations.export(customer_id))
    response.headers["Content-Disposition"] = (
        f'attachment; filename="customer-{customer_id}-export.json"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@spec.route(
    "/customers/<int:customer_id>/merge",
    "POST",
    summary="Merge another customer into this one",
    tags=TAGS,
    request_body={"required": True, **json_content(MERGE_REQUEST)},
    responses={"200": ok("Merged.", MERGE_RESULT)},
)
@requires("customers:delete")
def merge_customers(customer_id: int) -> Response:
    """Every record of `drop_id` moves to this customer; `drop_id` is marked merged.
    Undo with /customers/unmerge and the returned audit entry id."""
    drop_id = _int_field(_body(), "drop_id")
    try:
        entry_id = operations.merge(customer_id, drop_id)
    except CustomerInvalid as exc:
        raise _invalid(exc) from None
    return jsonify(audit_entry_id=entry_id, customer=queries.visible(queries.get(customer_id)))


@spec.route(
    "/customers/unmerge",
    "POST",
    summary="Undo a merge, from its audit entry",
    tags=TAGS,
    request_body={"required": True, **json_content(UNMERGE_REQUEST)},
    responses={"200": ok("The customer restored.", CUSTOMER)},
)
@requires("customers:delete")
def unmerge_customers() -> Response:
    entry_id = _int_field(_body(), "audit_entry_id")
    try:
        customer = operations.unmerge(entry_id)
    except operations.MergeConflict as exc:
        raise Conflict(str(exc)) from None
    return jsonify(queries.visible(customer))
