"""Renewal offers: made before a term ends, re-rated, explained factor by factor.

The daily job `policies.renewal_offers` looks at every policy in force whose term ends
within the tenant's `renewal_offer_days` (default 30) and that has no offer for the
next term yet, and offers the next term:

- the risk moves on by the length of the term: `claim_free_years` grows by a year per
  year (claims do not exist yet; once they do, a claim in the term resets it),
  `vehicle_age_months` by twelve a year, and `issue_age` by the term's years, so term
  life renews at the attained age for a new level term (a risk giving a date of birth
  instead ages by itself: the plugin takes the age nearest birthday on the new start
  date);
- it is rated with core.products.rating.rate on the product version in force on the
  renewal's start date, that is the current rate table;
- the explanation compares the expiring version's trace with the new one step by step
  (steps match by `name`; the `label`, the `factor` before and after, and the change of
  `sign x result`), e.g. "No-claim bonus 35% → 45%: -1,021.53" (shown with a true
  minus sign). Whatever the steps do not account for (a plugin's rounding) is one
  last "Other changes" line, so the effects always add up to the change of premium.

A risk the plugin refuses for the next term (a car past 60 months without an agreed
value) gets no offer; the job reports it, and staff re-quote. Offers are inserted with
ON CONFLICT, so a second run, or two at once, make each offer once.

Accepting an offer (staff, or the customer in the portal) creates the next term as a
new policy (`renewal_of_id`), version 1 with the offer's risk and trace, and issues it
at once, so it has its number: the customer agreed and the price is fixed. Its agent
is the customer's agent (the book may have moved), else the expiring policy's, and
must be licensed on the renewal's start date. Declining closes the offer; the policy
then expires at the end of its term. An endorsement re-rates an open offer on the new
risk; a cancellation or the expiry withdraws it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_login import current_user
from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert

from core import audit, settings
from core.agents.models import Agent
from core.customers.models import Customer
from core.db import committed, db
from core.jobs import JobContext, periodic
from core.money import ZERO, format_amount, round_cents
from core.policies import terms
from core.policies.lifecycle import IllegalTransition
from core.policies.models import (
    ACCEPTED,
    DECLINED,
    IN_FORCE,
    IN_GRACE,
    OFFERED,
    STATE_BOUND,
    WITHDRAWN,
    Policy,
    PolicyVersion,
    RenewalOffer,
)
from core.policies.rules import PolicyInvalid
from core.policies.versions import (
    agent_errors,
    checked_id,
    current_version,
    issue_locked,
    new_business_version,
    snapshot,
)
from core.products import rating
from core.products.models import Product
from core.products.rules import RatingRefused
from core.security import scope
from core.security.authz import authorize, has_permission
from core.security.permissions import PORTAL

OFFERS_JOB = "policies.renewal_offers"
OFFER_DAYS_SETTING = "renewal_offer_days"
CHUNK = 200
REFUSALS_REPORTED = 100
MINUS = "\u2212"
ARROW = "\u2192"
OTHER_STEP = "other"

# Risk fields that move with time, and by how much per year of the term.
AGEING_FIELDS = {"claim_free_years": 1, "vehicle_age_months": 12, "issue_age": 1}


# --- The next term's risk and its explanation ---------------------------------------


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def next_risk(risk: Mapping[str, Any], years: int) -> dict[str, Any]:
    """The risk as it stands `years` later (AGEING_FIELDS); other fields as they are."""
    moved = dict(risk)
    for name, per_year in AGEING_FIELDS.items():
        # A line has some of these fields only (motor no `issue_age`, life no car).
        if name not in moved:
            continue
        value = _whole(moved[name])
        if value is not None:
            moved[name] = value + per_year * years
    return moved


def _signed(step: Mapping[str, Any] | None) -> Decimal:
    if step is None:
        return ZERO
    return Decimal(int(step.get("sign") or 0)) * Decimal(str(step.get("result", "0")))


def explain(
    old_trace: Sequence[Mapping[str, Any]],
    new_trace: Sequence[Mapping[str, Any]],
    old_premium: Decimal,
    new_premium: Decimal,
) -> list[dict[str, Any]]:
    """What changed between two traces, step by step: `[{"step", "label", "from", "to",
    "effect"}]`, `effect` a decimal string. Steps that enter the premium (sign +1 or
    -1) are compared; an unchanged one is left out. The effects sum to the premium's
    change (an "Other changes" line takes what the steps do not explain)."""
    before = {step.get("name"): step for step in old_trace}
    after = {step.get("name"): step for step in new_trace}
    names = [*after, *(name for name in before if name not in after)]
    items: list[dict[str, Any]] = []
    for name in names:
        old, new = before.get(name), after.get(name)
        if not any(int((s or {}).get("sign") or 0) for s in (old, new)):
            continue
        effect = round_cents(_signed(new) - _signed(old))
        factor_from = old.get("factor") if old else None
        factor_to = new.get("factor") if new else None
        if effect == 0 and factor_from == factor_to:
            continue
        label = (new or old or {}).get("label") or name
        items.append(
            {
                "step": name,
                "label": label,
                "from": factor_from,
                "to": factor_to,
                "effect": str(effect),
            }
        )
    rest = round_cents(new_premium - old_premium) - sum(
        (Decimal(item["effect"]) for item in items), ZERO
    )
    if rest:
        items.append(
            {
                "step": OTHER_STEP,
                "label": "Other changes",
                "from": None,
                "to": None,
                "effect": str(rest),
            }
        )
    return items


def signed_amount(amount: Decimal) -> str:
    """`+1,234.50`, `\u22121,021.53` (MINUS, a true minus sign), `0.00`."""
    if amount > 0:
        return f"+{format_amount(amount)}"
    if amount < 0:
        return f"{MINUS}{format_amount(-amount)}"
    return format_amount(amount)


def describe(item: Mapping[str, Any]) -> str:
    """One line of an explanation in words: "No-claim bonus 35% → 45%: \u22121,021.53"."""
    effect = signed_amount(Decimal(str(item["effect"])))
    old, new = item.get("from"), item.get("to")
    if old and new and old != new:
        return f"{item['label']} {old} {ARROW} {new}: {effect}"
    if old and not new:
        return f"{item['label']} {old} {ARROW} none: {effect}"
    if new and not old:
        return f"{item['label']} {ARROW} {new}: {effect}"
    factor = f" ({new})" if new else ""
    return f"{item['label']}{factor}: {effect}"


# --- Making and refreshing offers ----------------------------------------------------


def _offer_values(policy: Policy, version: PolicyVersion, rated: rating.Rated) -> dict[str, Any]:
    start = policy.end_date
    return {
        "policy_id": policy.id,
        "start_date": start,
        "end_date": terms.term_end(rated.risk, start),
        "risk": rated.risk,
        "premium": rated.premium,
        "previous_premium": version.premium,
        "currency": rated.currency,
        "trace": rated.trace,
        "explanation": explain(version.trace, rated.trace, version.premium, rated.premium),
        "product_version_id": rated.version.id,
        "rate_table_version": rated.rate_table_version,
    }


def rate_next_term(policy: Policy, version: PolicyVersion) -> rating.Rated:
    """The next term of `policy` rated on the version in force on its start date."""
    product = db.session.get(Product, policy.product_id)
    assert product is not None
    years = terms.term_years(version.risk)
    return rating.rate(product.line_code, next_risk(version.risk, years), policy.end_date)


def due(today: date, days: int) -> Any:
    """SQL: policies in force ending within `days` of `today` with no live offer for
    the next term (a withdrawn one may be offered again)."""
    live = exists().where(
        RenewalOffer.policy_id == Policy.id,
        RenewalOffer.start_date == Policy.end_date,
        RenewalOffer.status != WITHDRAWN,
    )
    return and_(
        Policy.state == IN_FORCE,
        Policy.end_date > today,
        Policy.end_date <= today + timedelta(days=days),
        ~live,
    )


def offer(policy: Policy) -> RenewalOffer | None:
    """Offer the next term of `policy` (idempotent: an offer already made stays as it
    is, a withdrawn one is made again). Raises RatingRefused. The caller commits."""
    version = current_version(policy)
    values = _offer_values(policy, version, rate_next_term(policy, version))
    changes = {k: v for k, v in values.items() if k not in ("policy_id", "start_date")}
    statement = (
        insert(RenewalOffer)
        .values(
            **values,
            status=OFFERED,
            created_by=audit.current_actor(),
            updated_by=audit.current_actor(),
        )
        .on_conflict_do_update(
            index_elements=["policy_id", "start_date"],
            set_={
                **changes,
                "status": OFFERED,
                "decided_at": None,
                "decided_by": None,
                "updated_by": audit.current_actor(),
                "updated_at": func.now(),
            },
            where=RenewalOffer.status == WITHDRAWN,
        )
        .returning(RenewalOffer.id)
    )
    offer_id = db.session.scalar(statement)
    if offer_id is None:
        return None
    audit.record(
        "policies.renewal_offer",
        entity="policies",
        entity_id=policy.id,
        details={
            "offer": offer_id,
            "premium": values["premium"],
            "previous_premium": values["previous_premium"],
            "start_date": values["start_date"],
        },
    )
    return db.session.get(RenewalOffer, offer_id)


def make_offers(today: date, progress: Any = None) -> dict[str, Any]:
    """Offer the next term of every policy due (`due`), a chunk per transaction.
    Returns counts and the refusals (at most REFUSALS_REPORTED of them)."""
    days = int(settings.get(OFFER_DAYS_SETTING))
    condition = due(today, days)
    total = db.session.scalar(select(func.count()).select_from(Policy).where(condition))
    made, refused_count, after = 0, 0, 0
    refused: list[dict[str, Any]] = []
    while True:
        ids = list(
            db.session.scalars(
                select(Policy.id)
                .where(condition, Policy.id > after)
                .order_by(Policy.id)
                .limit(CHUNK)
            )
        )
        if not ids:
            break
        for policy_id in ids:
            policy = db.session.get(Policy, policy_id)
            assert policy is not None
            try:
                with db.session.begin_nested():
                    if offer(policy) is not None:
                        made += 1
            except RatingRefused as exc:
                refused_count += 1
                if len(refused) < REFUSALS_REPORTED:
                    refused.append({"policy_id": policy_id, "errors": exc.errors})
        db.session.commit()
        after = ids[-1]
        if progress is not None:
            progress(made + refused_count, total)
    return {
        "on": today.isoformat(),
        "days": days,
        "offered": made,
        "refused": refused_count,
        "refusals": refused,
    }


@periodic(OFFERS_JOB, every=24 * 3600)
def renewal_offers_job(ctx: JobContext, today: str | None = None) -> dict[str, Any]:
    """Daily: renewal offers for the policies due. `today` (ISO date) for tests and
    catch-up runs; by default the date the job runs."""
    day = date.fromisoformat(today) if today else date.today()
    return make_offers(day, progress=lambda done, total: ctx.progress(done, total))


def refresh(offer_row: RenewalOffer, policy: Policy, version: PolicyVersion) -> bool:
    """Re-rate an open offer on `version` (after an endorsement, a new rate table);
    withdrawn when the new risk cannot be rated. True if it changed."""
    try:
        values = _offer_values(policy, version, rate_next_term(policy, version))
    except RatingRefused as exc:
        offer_row.status = WITHDRAWN
        offer_row.decided_at = datetime.now(UTC)
        offer_row.decided_by = audit.current_actor()
        audit.record(
            "policies.renewal_withdraw",
            entity="policies",
            entity_id=policy.id,
            details={"offer": offer_row.id, "errors": exc.errors},
        )
        return True
    changed = False
    for name, value in values.items():
        if getattr(offer_row, name) != value:
            setattr(offer_row, name, value)
            changed = True
    if changed:
        audit.record(
            "policies.renewal_rerate",
            entity="policies",
            entity_id=policy.id,
            details={"offer": offer_row.id, "premium": offer_row.premium},
        )
    return changed


def refresh_open_offers(policy: Policy, version: PolicyVersion) -> int:
    """Re-rate the open offers of `policy` on its new version; how many changed."""
    rows = db.session.scalars(
        select(RenewalOffer).where(
            RenewalOffer.policy_id == policy.id, RenewalOffer.status == OFFERED
        )
    ).all()
    return sum(refresh(row, policy, version) for row in rows)


# --- Reading, accepting, declining ----------------------------------------------------


def get_offer(offer_id: int, user: Any = None, *, lock: bool = False) -> RenewalOffer:
    """The offer, if its policy is within the caller's reach (OutOfReach otherwise)."""
    found = scope.get_or_404(RenewalOffer, checked_id(offer_id), user=user)
    if lock:
        db.session.refresh(found, with_for_update=True)
    return found


def offers_of(policy_id: int, user: Any = None) -> list[RenewalOffer]:
    """The policy's offers within reach, newest first."""
    statement = scope.scoped(
        select(RenewalOffer)
        .where(RenewalOffer.policy_id == checked_id(policy_id))
        .order_by(RenewalOffer.start_date.desc(), RenewalOffer.id.desc()),
        RenewalOffer,
        user,
    )
    return list(db.session.scalars(statement))


def _authorize_decision(user: Any) -> None:
    """Staff decide with policies:update; a customer decides their own in the portal."""
    if not has_permission(current_user if user is None else user, PORTAL):
        authorize("policies:update", user)


def _open(offer_row: RenewalOffer) -> None:
    if offer_row.status != OFFERED:
        raise IllegalTransition(
            f"This renewal offer is {offer_row.status}: it can no longer be answered.",
            state=offer_row.status,
        )


def _decided(offer_row: RenewalOffer, status: str) -> None:
    offer_row.status = status
    offer_row.decided_at = datetime.now(UTC)
    offer_row.decided_by = audit.current_actor()


def accept(offer_id: int, *, user: Any = None) -> Policy:
    """Accept an open offer: the next term as a new policy, issued (numbered) at once."""
    _authorize_decision(user)

    def work() -> Policy:
        offer_row = get_offer(offer_id, user, lock=True)
        _open(offer_row)
        policy = db.session.scalars(
            select(Policy).where(Policy.id == offer_row.policy_id).with_for_update()
        ).one()
        if policy.state not in (IN_FORCE, IN_GRACE):
            raise IllegalTransition(
                f"Policy {policy.number} is {policy.state}: it cannot be renewed.",
                state=policy.state,
            )
        customer = db.session.get(Customer, policy.customer_id)
        agent_id = customer.agent_id if customer and customer.agent_id else policy.agent_id
        agent = db.session.get(Agent, agent_id) if agent_id is not None else None
        errors = agent_errors(agent, offer_row.start_date)
        if errors:
            raise PolicyInvalid(errors)
        assert agent is not None
        renewed = Policy(
            customer_id=policy.customer_id,
            agent_id=agent.id,
            product_id=policy.product_id,
            renewal_of_id=policy.id,
            state=STATE_BOUND,
            start_date=offer_row.start_date,
            end_date=offer_row.end_date,
            payment_frequency=policy.payment_frequency,
            premium=offer_row.premium,
            currency=offer_row.currency,
            declarations=policy.declarations,
        )
        db.session.add(renewed)
        db.session.flush()
        db.session.add(
            new_business_version(
                renewed,
                risk=offer_row.risk,
                trace=offer_row.trace,
                product_version_id=offer_row.product_version_id,
                rate_table_version=offer_row.rate_table_version,
                reason=f"Renewal of {policy.number}",
            )
        )
        db.session.flush()
        audit.record(
            "policies.bind",
            entity="policies",
            entity_id=renewed.id,
            after=snapshot(renewed),
            details={"renewal_of": policy.id, "offer": offer_row.id},
        )
        issue_locked(renewed)
        _decided(offer_row, ACCEPTED)
        offer_row.renewed_policy_id = renewed.id
        audit.record(
            "policies.renewal_accept",
            entity="policies",
            entity_id=policy.id,
            details={"offer": offer_row.id, "renewed_policy": renewed.id, "number": renewed.number},
        )
        return renewed

    return committed(work)


def decline(offer_id: int, *, user: Any = None) -> RenewalOffer:
    """Decline an open offer; the policy expires at the end of its term."""
    _authorize_decision(user)

    def work() -> RenewalOffer:
        offer_row = get_offer(offer_id, user, lock=True)
        _open(offer_row)
        _decided(offer_row, DECLINED)
        audit.record(
            "policies.renewal_decline",
            entity="policies",
            entity_id=offer_row.policy_id,
            details={"offer": offer_row.id},
        )
        return offer_row

    return committed(work)
