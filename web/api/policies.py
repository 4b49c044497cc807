"""Policies over the API: bind a quote, issue, list and read, endorse, cancel, and
answer renewal offers.

Premiums and every amount are decimal strings ("14391.12"). A policy or offer
outside the caller's reach (another tenant's, or not in an agent's book) is 404. Bad
input is 422 naming each field (`payment_frequency`, `declarations.good_health`,
`agent_id` when the agent's licence does not cover the start date, `effective_from`,
`risk_changes.<field>`); a change the policy's state does not allow (issuing twice,
endorsing a cancelled policy, answering an offer twice) is 409.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import Conflict

from core.policies import operations, queries, renewals
from core.policies.lifecycle import IllegalTransition
from core.policies.models import FREQUENCIES, OFFER_STATUSES, POLICY_STATES, VERSION_KINDS
from core.policies.rules import PolicyInvalid
from core.security.authz import requires
from web.api import spec
from web.api.openapi import DATE, NULLABLE_STRING, STRING, json_content, ok, page
from web.errors import ValidationFailed

TAGS = ("policies",)
_DECIMAL = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "A decimal amount."}
_STEP = {"type": "object", "description": "A rating step (see RatingStep)."}

BIND_REQUEST = spec.schema(
    "BindRequest",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "payment_frequency": {"type": "string", "enum": list(FREQUENCIES)},
            "declarations": {
                "type": "object",
                "additionalProperties": {"type": "boolean"},
                "description": "Term life: good_health, smoker_status_true and "
                "no_hazardous_occupation, each true.",
            },
        },
    },
)
POLICY_VERSION = spec.schema(
    "PolicyVersion",
    {
        "type": "object",
        "required": ["version", "kind", "effective_from", "premium", "adjustment", "currency"],
        "properties": {
            "version": {"type": "integer"},
            "kind": {"type": "string", "enum": list(VERSION_KINDS)},
            "effective_from": DATE,
            "risk": {"type": "object"},
            "premium": {**_DECIMAL, "description": "The annual premium of these terms."},
            "adjustment": {
                **_DECIMAL,
                "description": "Money this version moves for the rest of the policy year: "
                "the first premium, a pro-rata difference, or minus a return premium.",
            },
            "currency": STRING,
            "rate_table_version": STRING,
            "reason": STRING,
            "trace": {"type": "array", "items": _STEP},
            "created_at": {**NULLABLE_STRING, "format": "date-time"},
        },
    },
)
POLICY = spec.schema(
    "Policy",
    {
        "type": "object",
        "required": ["id", "state", "start_date", "end_date", "premium", "currency"],
        "properties": {
            "id": {"type": "integer"},
            "number": {**NULLABLE_STRING, "description": "Given at issue."},
            "state": {"type": "string", "enum": list(POLICY_STATES)},
            "product": STRING,
            "customer_id": {"type": "integer"},
            "agent_id": {"type": "integer", "nullable": True},
            "quote_id": {"type": "integer", "nullable": True},
            "renewal_of_id": {"type": "integer", "nullable": True},
            "start_date": DATE,
            "end_date": {**DATE, "description": "The first day after the term."},
            "payment_frequency": {"type": "string", "enum": list(FREQUENCIES)},
            "premium": {**_DECIMAL, "description": "The current annual premium."},
            "currency": STRING,
            "declarations": {"type": "object"},
            "issued_at": {**NULLABLE_STRING, "format": "date-time"},
            "cancelled_on": {**NULLABLE_STRING, "format": "date"},
            "cancel_reason": NULLABLE_STRING,
            "versions": {"type": "array", "items": POLICY_VERSION},
        },
    },
)
POLICY_PAGE = spec.schema("PolicyPage", page(POLICY))
ENDORSEMENT_REQUEST = spec.schema(
    "EndorsementRequest",
    {
        "type": "object",
        "required": ["effective_from", "risk_changes", "reason"],
        "additionalProperties": False,
        "properties": {
            "effective_from": {**DATE, "description": "Within the term."},
            "risk_changes": {
                "type": "object",
                "description": "Risk fields and their new values; null removes a field.",
            },
            "reason": STRING,
        },
    },
)
CANCEL_REQUEST = spec.schema(
    "CancelRequest",
    {
        "type": "object",
        "required": ["effective_on", "reason"],
        "additionalProperties": False,
        "properties": {"effective_on": DATE, "reason": STRING},
    },
)
EXPLANATION = {
    "type": "object",
    "properties": {
        "step": STRING,
        "label": STRING,
        "from": NULLABLE_STRING,
        "to": NULLABLE_STRING,
        "effect": _DECIMAL,
        "text": {
            **STRING,
            "description": 'In words: "No-claim bonus 35% → 45%: \u22121,021.53".',
        },
    },
}
RENEWAL_OFFER = spec.schema(
    "RenewalOffer",
    {
        "type": "object",
        "required": ["id", "policy_id", "status", "start_date", "premium", "previous_premium"],
        "properties": {
            "id": {"type": "integer"},
            "policy_id": {"type": "integer"},
            "status": {"type": "string", "enum": list(OFFER_STATUSES)},
            "start_date": DATE,
            "end_date": DATE,
            "premium": _DECIMAL,
            "previous_premium": _DECIMAL,
            "currency": STRING,
            "risk": {"type": "object"},
            "rate_table_version": STRING,
            "explanation": {"type": "array", "items": EXPLANATION},
            "trace": {"type": "array", "items": _STEP},
            "decided_at": {**NULLABLE_STRING, "format": "date-time"},
            "renewed_policy_id": {"type": "integer", "nullable": True},
        },
    },
)


CONFLICT = {"description": "The policy's (or offer's) state does not allow this."}


def _body(optional: bool = False) -> dict[str, Any]:
    if optional and not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]}, "The request body is not JSON.")
    return body


def _unknown(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise ValidationFailed({name: ["Not a field of this request."] for name in extra})


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if not value.isdigit() or not 0 < int(value) < 2**31:
        raise ValidationFailed({name: ["Must be a whole number."]})
    return int(value)


def _policy(policy: Any) -> Response:
    return jsonify(queries.plain_policy(policy, with_versions=True))


def _attempt(work: Any) -> Any:
    """Run an operation, turning its refusals into 422 and 409."""
    try:
        return work()
    except PolicyInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    except IllegalTransition as exc:
        raise Conflict(exc.message) from None


@spec.route(
    "/quotes/<int:quote_id>/bind",
    "POST",
    summary="Bind a quote",
    tags=TAGS,
    request_body={"required": False, **json_content(BIND_REQUEST)},
    responses={"201": ok("The policy, bound (no number until issued).", POLICY), "409": CONFLICT},
)
@requires("policies:create")
def bind_quote(quote_id: int) -> Response:
    """The agent (the quote's, else the customer's) must hold a licence valid on the
    start date; term life needs its declarations. 409 when the quote is bound already."""
    body = _body(optional=True)
    _unknown(body, ("payment_frequency", "declarations"))
    policy = _attempt(
        lambda: operations.bind(
            quote_id,
            payment_frequency=body.get("payment_frequency", "annual"),
            declarations=body.get("declarations"),
        )
    )
    response = _policy(policy)
    response.status_code = 201
    response.headers["Location"] = f"{request.url_root.rstrip('/')}/api/v1/policies/{policy.id}"
    return response


@spec.route(
    "/policies/<int:policy_id>/issue",
    "POST",
    summary="Issue a bound policy (its number)",
    tags=TAGS,
    responses={"200": ok("The policy, in force, numbered.", POLICY), "409": CONFLICT},
)
@requires("policies:update")
def issue_policy(policy_id: int) -> Response:
    """The number follows the tenant's `policy_number_pattern` (default
    POL-{yyyy}-{seq:06}), counted in the year of the start date, with no gaps."""
    return _policy(_attempt(lambda: operations.issue(policy_id)))


@spec.route(
    "/policies",
    "GET",
    summary="List policies (keyset pages)",
    tags=TAGS,
    responses={"200": ok("A page of policies, newest first.", POLICY_PAGE)},
)
@requires("policies:read")
def list_policies() -> Response:
    """Filters: `state`, `product` (a line code), `customer_id`, `agent_id`; `cursor` is
    the previous page's `next_cursor`; `limit` up to 200. An agent sees their book."""
    try:
        page = queries.list_policies(
            queries.Filters(
                state=request.args.get("state") or None,
                product=request.args.get("product") or None,
                customer_id=_int_arg("customer_id"),
                agent_id=_int_arg("agent_id"),
            ),
            cursor=request.args.get("cursor") or None,
            limit=_int_arg("limit") or queries.PAGE_SIZE,
        )
    except PolicyInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    codes = queries.line_codes()
    return jsonify(
        items=[
            queries.plain_policy(policy, line_code=codes.get(policy.product_id))
            for policy in page.items
        ],
        next_cursor=page.next_cursor,
    )


@spec.route(
    "/policies/<int:policy_id>",
    "GET",
    summary="Read a policy with its versions",
    tags=TAGS,
    responses={"200": ok("The policy and every version, oldest first.", POLICY)},
)
@requires("policies:read")
def get_policy(policy_id: int) -> Response:
    return _policy(queries.get_policy(policy_id))


@spec.route(
    "/policies/<int:policy_id>/endorsements",
    "POST",
    summary="Endorse a policy (a new version)",
    tags=TAGS,
    request_body={"required": True, **json_content(ENDORSEMENT_REQUEST)},
    responses={"201": ok("The new version.", POLICY_VERSION), "409": CONFLICT},
)
@requires("policies:update")
def endorse_policy(policy_id: int) -> Response:
    """Re-rated on the product version in force on the policy's start date; the
    adjustment is (new annual - old annual) x days left in the policy year / its days,
    rounded half-up to the cent."""
    body = _body()
    _unknown(body, ("effective_from", "risk_changes", "reason"))
    version = _attempt(
        lambda: operations.endorse(
            policy_id,
            effective_from=body.get("effective_from"),
            risk_changes=body.get("risk_changes"),
            reason=body.get("reason"),
        )
    )
    response = jsonify(queries.plain_version(version))
    response.status_code = 201
    return response


@spec.route(
    "/policies/<int:policy_id>/cancel",
    "POST",
    summary="Cancel a policy",
    tags=TAGS,
    request_body={"required": True, **json_content(CANCEL_REQUEST)},
    responses={"200": ok("The cancellation version.", POLICY_VERSION), "409": CONFLICT},
)
@requires("policies:update")
def cancel_policy(policy_id: int) -> Response:
    """Returns the annual premium pro-rata for the unexpired days of the policy year:
    the version's `adjustment` is minus that amount."""
    body = _body()
    _unknown(body, ("effective_on", "reason"))
    version = _attempt(
        lambda: operations.cancel(
            policy_id, effective_on=body.get("effective_on"), reason=body.get("reason")
        )
    )
    return jsonify(queries.plain_version(version))


@spec.route(
    "/policies/<int:policy_id>/renewal-offers",
    "GET",
    summary="A policy's renewal offers",
    tags=TAGS,
    responses={
        "200": ok("Newest first.", {"type": "array", "items": RENEWAL_OFFER}),
    },
)
@requires("policies:read")
def list_renewal_offers(policy_id: int) -> Response:
    policy = queries.get_policy(policy_id)
    return jsonify([queries.plain_offer(offer) for offer in renewals.offers_of(policy.id)])


@spec.route(
    "/renewal-offers/<int:offer_id>/accept",
    "POST",
    summary="Accept a renewal offer",
    tags=TAGS,
    responses={"201": ok("The next term, issued.", POLICY), "409": CONFLICT},
)
@requires("policies:update")
def accept_renewal_offer(offer_id: int) -> Response:
    """Creates the next term as a new policy (`renewal_of_id`) and issues it."""
    policy = _attempt(lambda: renewals.accept(offer_id))
    response = _policy(policy)
    response.status_code = 201
    return response


@spec.route(
    "/renewal-offers/<int:offer_id>/decline",
    "POST",
    summary="Decline a renewal offer",
    tags=TAGS,
    responses={"200": ok("The declined offer.", RENEWAL_OFFER), "409": CONFLICT},
)
@requires("policies:update")
def decline_renewal_offer(offer_id: int) -> Response:
    return jsonify(queries.plain_offer(_attempt(lambda: renewals.decline(offer_id))))
