"""Reading policies: lists with keyset pages and filters, one policy with its versions
and renewal offers, and the plain (JSON-ready) form the API and screens show.

Every read goes through the reach rule (core.policies.rules): an agent sees the
policies of their book, a manager those of their subtree, a portal user their own;
out of reach is the same as missing (404).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from core.customers.models import Customer
from core.db import db
from core.policies import lifecycle, rules
from core.policies.models import POLICY_STATES, Policy, PolicyVersion, RenewalOffer
from core.policies.renewals import describe, offers_of
from core.policies.rules import PolicyInvalid
from core.policies.versions import get_policy
from core.products import queries as product_queries
from core.products.models import Product
from core.security import scope

PAGE_SIZE, PAGE_SIZE_MAX = 50, 200
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Filters:
    state: str | None = None
    product: str | None = None  # a line code
    customer_id: int | None = None
    agent_id: int | None = None


@dataclass
class Page:
    items: list[Policy] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(policy_id: int) -> str:
    """Opaque to clients: the id of the last policy of the page (newest first)."""
    return base64.urlsafe_b64encode(f"p{policy_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("p") or not raw[1:].isdigit() or not 0 < int(raw[1:]) <= INT_MAX:
        raise PolicyInvalid({"cursor": ["Not a cursor this API gave."]})
    return int(raw[1:])


def _check(filters: Filters, limit: int) -> None:
    errors: rules.Errors = {}
    if filters.state is not None and filters.state not in POLICY_STATES:
        errors["state"] = [f"Must be one of: {', '.join(POLICY_STATES)}."]
    for name in ("customer_id", "agent_id"):
        value = getattr(filters, name)
        if value is not None and not 0 < value <= INT_MAX:
            errors[name] = ["Must be an id."]
    if not 0 < limit <= PAGE_SIZE_MAX:
        errors["limit"] = [f"Must be 1 to {PAGE_SIZE_MAX}."]
    if errors:
        raise PolicyInvalid(errors)


def list_policies(
    filters: Filters,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    user: Any = None,
) -> Page:
    """A page of policies within reach, newest first (by id), with a cursor for the next.
    Keyset pages: the next page starts below the last id, whatever was added since."""
    _check(filters, limit)
    statement = select(Policy).order_by(Policy.id.desc()).limit(limit + 1)
    if cursor:
        statement = statement.where(Policy.id < decode_cursor(cursor))
    if filters.state:
        statement = statement.where(Policy.state == filters.state)
    if filters.product:
        statement = statement.where(
            Policy.product_id.in_(select(Product.id).where(Product.line_code == filters.product))
        )
    if filters.customer_id is not None:
        statement = statement.where(Policy.customer_id == filters.customer_id)
    if filters.agent_id is not None:
        statement = statement.where(Policy.agent_id == filters.agent_id)
    rows = list(db.session.scalars(scope.scoped(statement, Policy, user)))
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items, encode_cursor(items[-1].id) if more else None)


def versions_of(policy: Policy) -> list[PolicyVersion]:
    """Every version of a policy (already within reach), oldest first."""
    return list(
        db.session.scalars(
            select(PolicyVersion)
            .where(PolicyVersion.policy_id == policy.id)
            .order_by(PolicyVersion.version)
        )
    )


def customer_names(customer_ids: set[int]) -> dict[int, str]:
    """Customer id -> display name, in one query (lists of policies)."""
    if not customer_ids:
        return {}
    found = db.session.scalars(select(Customer).where(Customer.id.in_(customer_ids)))
    return {customer.id: customer.display_name for customer in found}


def line_codes() -> Mapping[int, str]:
    """Product id -> line code (few products per tenant, remembered by the process)."""
    return product_queries.line_codes()


# --- Plain forms -------------------------------------------------------------------


def plain_version(version: PolicyVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "kind": version.kind,
        "effective_from": version.effective_from.isoformat(),
        "risk": version.risk,
        "premium": str(version.premium),
        "adjustment": str(version.adjustment),
        "currency": version.currency,
        "rate_table_version": version.rate_table_version,
        "reason": version.reason,
        "trace": version.trace,
        "created_at": version.created_at.isoformat() if version.created_at else None,
    }


def plain_offer(offer: RenewalOffer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "policy_id": offer.policy_id,
        "status": offer.status,
        "start_date": offer.start_date.isoformat(),
        "end_date": offer.end_date.isoformat(),
        "premium": str(offer.premium),
        "previous_premium": str(offer.previous_premium),
        "currency": offer.currency,
        "risk": offer.risk,
        "rate_table_version": offer.rate_table_version,
        "explanation": [{**item, "text": describe(item)} for item in offer.explanation],
        "trace": offer.trace,
        "decided_at": offer.decided_at.isoformat() if offer.decided_at else None,
        "renewed_policy_id": offer.renewed_policy_id,
    }


def plain_policy(
    policy: Policy, *, line_code: str | None = None, with_versions: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": policy.id,
        "number": policy.number,
        "state": policy.state,
        "product": line_code or line_codes().get(policy.product_id),
        "customer_id": policy.customer_id,
        "agent_id": policy.agent_id,
        "quote_id": policy.quote_id,
        "renewal_of_id": policy.renewal_of_id,
        "start_date": policy.start_date.isoformat(),
        "end_date": policy.end_date.isoformat(),
        "payment_frequency": policy.payment_frequency,
        "premium": str(policy.premium),
        "currency": policy.currency,
        "declarations": policy.declarations,
        "issued_at": policy.issued_at.isoformat() if policy.issued_at else None,
        "cancelled_on": policy.cancelled_on.isoformat() if policy.cancelled_on else None,
        "cancel_reason": policy.cancel_reason,
    }
    if with_versions:
        body["versions"] = [plain_version(v) for v in versions_of(policy)]
    return body


def detail(policy_id: int, user: Any = None) -> tuple[Policy, list[PolicyVersion], list[Any]]:
    """A policy within reach with its versions (oldest first) and offers (newest first)."""
    policy = get_policy(policy_id, user)
    return policy, versions_of(policy), offers_of(policy.id, user)


def may_move(policy: Policy, to: str) -> bool:
    """Whether the policy's state allows moving to `to` (what the screens offer)."""
    return lifecycle.allowed(policy.state, to)
