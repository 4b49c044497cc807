"""The states of a policy and the moves between them (PRODUCT.md, "Policy lifecycle").

    bound -> in_force                  issue
    in_force -> expired                the term ended (the expiry job)
    in_force -> cancelled              cancellation (core.policies.operations.cancel)
    in_force -> in_grace               a premium is overdue (billing)
    in_grace -> in_force               paid within the grace days (billing)
    in_grace -> lapsed                 grace ran out unpaid (billing)
    in_grace -> cancelled              cancellation during grace
    lapsed -> in_force                 revival, where the product allows it

`expired` and `cancelled` are final. A bound policy has no number yet, so it is
issued or left alone, never cancelled (the schema insists an issued state has a
number). Anything else raises `IllegalTransition`, which the API answers with 409.

Grace, lapse and revival are the calls billing will make once it exists; they are
system transitions (the caller has authorized whatever caused them) and take the
policy by id without a reach check. Revival follows the product: `revival_years`
None (motor) means a lapsed policy is re-quoted, never revived; otherwise it may be
revived until that many years after the day it lapsed, which the `policies.lapse`
audit entry records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update

from core import audit
from core.audit import AuditEntry
from core.db import committed, db
from core.jobs import JobContext, periodic
from core.policies.models import (
    CANCELLED,
    EXPIRED,
    IN_FORCE,
    IN_GRACE,
    LAPSED,
    OFFERED,
    STATE_BOUND,
    WITHDRAWN,
    Policy,
    RenewalOffer,
)
from core.policies.terms import add_years
from core.products.models import Product

TRANSITIONS: dict[str, frozenset[str]] = {
    STATE_BOUND: frozenset({IN_FORCE}),
    IN_FORCE: frozenset({EXPIRED, CANCELLED, IN_GRACE}),
    IN_GRACE: frozenset({IN_FORCE, LAPSED, CANCELLED}),
    LAPSED: frozenset({IN_FORCE}),
    EXPIRED: frozenset(),
    CANCELLED: frozenset(),
}

STATE_LABELS = {
    STATE_BOUND: "bound",
    IN_FORCE: "in force",
    IN_GRACE: "in grace",
    LAPSED: "lapsed",
    EXPIRED: "expired",
    CANCELLED: "cancelled",
}

LAPSE_ACTION = "policies.lapse"
EXPIRY_JOB = "policies.expire"
EXPIRY_CHUNK = 1000


class IllegalTransition(Exception):
    """A change the policy's (or quote's, or offer's) current state does not allow."""

    def __init__(self, message: str, *, state: str | None = None, to: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.state = state
        self.to = to


def allowed(state: str, to: str) -> bool:
    return to in TRANSITIONS.get(state, frozenset())


def _name(policy: Policy) -> str:
    return policy.number or f"#{policy.id}"


def check(policy: Policy, to: str, doing: str | None = None) -> None:
    """Raise IllegalTransition unless `policy` may move to state `to`."""
    if allowed(policy.state, to):
        return
    what = doing or f"become {STATE_LABELS.get(to, to)}"
    raise IllegalTransition(
        f"Policy {_name(policy)} is {STATE_LABELS.get(policy.state, policy.state)}: "
        f"it cannot {what}.",
        state=policy.state,
        to=to,
    )


def move(policy: Policy, to: str, action: str, **details: Any) -> None:
    """Move `policy` to `to` in db.session, audited as `action` (the caller commits)."""
    check(policy, to)
    before = policy.state
    policy.state = to
    audit.record(
        action,
        entity="policies",
        entity_id=policy.id,
        before={"state": before},
        after={"state": to},
        details=details or None,
    )


def locked(policy_id: int) -> Policy:
    """The policy, its row locked until the transaction ends (state changes serialize)."""
    policy = db.session.scalars(
        select(Policy).where(Policy.id == policy_id).with_for_update()
    ).one_or_none()
    if policy is None:
        raise LookupError(f"no policy {policy_id}")
    return policy


# --- Billing's transitions ----------------------------------------------------------


def start_grace(policy_id: int, on: date) -> Policy:
    """A premium fell due unpaid on `on`: the policy enters its grace days."""

    def work() -> Policy:
        policy = locked(policy_id)
        move(policy, IN_GRACE, "policies.grace", on=on)
        return policy

    return committed(work)


def end_grace(policy_id: int, on: date) -> Policy:
    """Paid within grace: back in force."""

    def work() -> Policy:
        policy = locked(policy_id)
        if policy.state != IN_GRACE:
            raise IllegalTransition(
                f"Policy {_name(policy)} is {STATE_LABELS[policy.state]}, not in grace.",
                state=policy.state,
                to=IN_FORCE,
            )
        move(policy, IN_FORCE, "policies.grace_paid", on=on)
        return policy

    return committed(work)


def lapse(policy_id: int, on: date) -> Policy:
    """Grace ran out unpaid on `on`: the policy lapses."""

    def work() -> Policy:
        policy = locked(policy_id)
        move(policy, LAPSED, LAPSE_ACTION, on=on)
        return policy

    return committed(work)


def lapsed_on(policy_id: int) -> date | None:
    """The day the policy last lapsed, from its `policies.lapse` audit entry."""
    details = db.session.scalar(
        select(AuditEntry.details)
        .where(
            AuditEntry.entity == "policies",
            AuditEntry.entity_id == str(policy_id),
            AuditEntry.action == LAPSE_ACTION,
        )
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    if not details or "on" not in details:
        return None
    return date.fromisoformat(details["on"])


def revival_deadline(policy: Policy) -> date | None:
    """The last day a lapsed policy may be revived; None when it never may."""
    product = db.session.get(Product, policy.product_id)
    lapsed = lapsed_on(policy.id)
    if product is None or product.revival_years is None or lapsed is None:
        return None
    return add_years(lapsed, product.revival_years)


def revive(policy_id: int, on: date) -> Policy:
    """Bring a lapsed policy back in force on `on` (arrears and interest are billing's),
    if its product revives policies and `on` is within its revival years."""

    def work() -> Policy:
        policy = locked(policy_id)
        if policy.state != LAPSED:
            raise IllegalTransition(
                f"Policy {_name(policy)} is {STATE_LABELS[policy.state]}, not lapsed: "
                "there is nothing to revive.",
                state=policy.state,
                to=IN_FORCE,
            )
        deadline = revival_deadline(policy)
        if deadline is None:
            raise IllegalTransition(
                f"Policy {_name(policy)} cannot be revived: its product does not revive "
                "lapsed policies. Quote a new one.",
                state=policy.state,
                to=IN_FORCE,
            )
        if on > deadline:
            raise IllegalTransition(
                f"Policy {_name(policy)} could be revived until {deadline.isoformat()}; "
                "quote a new one.",
                state=policy.state,
                to=IN_FORCE,
            )
        move(policy, IN_FORCE, "policies.revive", on=on)
        return policy

    return committed(work)


# --- Expiry ---------------------------------------------------------------------------


def expire_due(today: date) -> list[int]:
    """Mark expired every policy in force whose term ended (`end_date <= today`), and
    withdraw their renewal offers nobody answered. Set-based, a chunk per transaction;
    returns the ids. Running it twice expires nothing more: idempotent."""
    expired: list[int] = []
    actor = audit.current_actor()
    while True:
        ids = list(
            db.session.scalars(
                update(Policy)
                .where(
                    Policy.id.in_(
                        select(Policy.id)
                        .where(Policy.state == IN_FORCE, Policy.end_date <= today)
                        .order_by(Policy.id)
                        .limit(EXPIRY_CHUNK)
                        .with_for_update(skip_locked=True)
                        .scalar_subquery()
                    )
                )
                .values(state=EXPIRED, updated_by=actor)
                .returning(Policy.id)
                .execution_options(synchronize_session=False)
            )
        )
        if not ids:
            break
        db.session.execute(
            update(RenewalOffer)
            .where(RenewalOffer.policy_id.in_(ids), RenewalOffer.status == OFFERED)
            .values(status=WITHDRAWN, decided_at=datetime.now(UTC), decided_by=actor)
            .execution_options(synchronize_session=False)
        )
        for policy_id in sorted(ids):
            audit.record(
                "policies.expire",
                entity="policies",
                entity_id=policy_id,
                before={"state": IN_FORCE},
                after={"state": EXPIRED},
                details={"on": today},
            )
        db.session.commit()
        expired.extend(ids)
    return sorted(expired)


@periodic(EXPIRY_JOB, every=24 * 3600)
def expire_job(ctx: JobContext, today: str | None = None) -> dict[str, Any]:
    """Daily: policies whose term ended are expired. `today` (ISO date) for tests and
    catch-up runs; by default the date the job runs."""
    day = date.fromisoformat(today) if today else date.today()
    ids = expire_due(day)
    return {"expired": len(ids), "on": day.isoformat()}
