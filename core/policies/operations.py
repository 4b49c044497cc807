"""Writing policies: bind a quote, issue, endorse, cancel. The only code that writes
policies and their versions (renewals aside: core.policies.renewals).

Each operation authorizes its caller, reaches the quote or policy through the reach
rule (out of reach is 404), validates everything before writing anything, and is one
transaction committed with its audit entry. A state the operation cannot start from
raises `IllegalTransition` (409); bad input `PolicyInvalid` naming each field (422).

- `bind`: an open quote becomes a policy, state `bound`, no number yet, with version 1
  (new business). Its agent (the quote's, else the customer's) must hold a licence
  valid on the start date (core.agents.rules.can_bind); a term-life quote needs its
  declarations (core.policies.rules.DECLARATIONS). The term runs one year, or
  `term_years` for a line rated on it (core.policies.terms).
- `issue`: the policy gets its number from the tenant's `policy_number_pattern`, counted
  in the year of its start date (the underwriting year), and goes in force. The
  counter row stays locked until the issue commits, so concurrent issues take distinct
  numbers with no gap (core.numbering).
- `endorse`: the changed risk is re-rated on the product version in force on the
  policy's ORIGINAL start date: the policy was sold on that tariff for its term, and
  an endorsement changes the risk, not the tariff (a new tariff applies at renewal).
  The new version carries the new annual premium and, as its adjustment, the pro-rata
  difference for the rest of the policy year (core.policies.terms.prorata).
- `cancel`: returns the current annual premium pro-rata for the unexpired days of the
  policy year (same rule), as a cancellation version with a negative adjustment; the
  money itself moves with billing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, update

from core import audit
from core.agents.models import Agent
from core.customers.models import Customer
from core.db import committed, db
from core.policies import lifecycle, renewals, rules, terms
from core.policies.lifecycle import IllegalTransition
from core.policies.models import (
    BOUND,
    CANCELLATION,
    CANCELLED,
    ENDORSEMENT,
    IN_FORCE,
    OFFERED,
    OPEN,
    STATE_BOUND,
    WITHDRAWN,
    Policy,
    PolicyVersion,
    Quote,
    RenewalOffer,
)
from core.policies.rules import Errors, PolicyInvalid
from core.policies.versions import (
    agent_errors,
    checked_id,
    current_version,
    get_policy,
    issue_locked,
    new_business_version,
    snapshot,
    version_snapshot,
)
from core.products import lines, rating
from core.products.models import Product
from core.products.rules import RatingRefused
from core.security import scope
from core.security.authz import authorize

# Risk fields that set the term's dates, which an endorsement cannot move.
FIXED_AT_BINDING = ("term_years",)


# --- Bind and issue ---------------------------------------------------------------------


def bind(
    quote_id: int,
    *,
    payment_frequency: Any = "annual",
    declarations: Any = None,
    user: Any = None,
) -> Policy:
    """Bind open quote `quote_id`: a policy in state `bound` (no number yet) with its
    version 1, and the quote marked bound. PolicyInvalid names every missing or bad
    field (the frequency, each declaration, the agent and their licence)."""
    authorize("policies:create", user)
    quote = scope.get_or_404(Quote, checked_id(quote_id), active_only=True, user=user)
    if quote.status != OPEN:
        raise IllegalTransition(
            f"Quote {quote.id} is already bound: it cannot be bound again.", state=quote.status
        )
    errors: Errors = {}
    frequency = rules.check_frequency(payment_frequency, errors)
    answers = rules.check_declarations(quote.line_code, declarations, errors)
    product = db.session.get(Product, quote.product_id)
    if product is None or not product.is_active:
        errors["product"] = ["This product is no longer sold: quote another one."]
    # Whether the customer is still on file, and their agent: none of their personal data.
    customer = db.session.execute(
        select(Customer.is_active, Customer.agent_id).where(Customer.id == quote.customer_id)
    ).one_or_none()
    if customer is None or not customer.is_active:
        errors["customer_id"] = ["This customer is no longer on file."]
    agent_id = quote.agent_id if quote.agent_id is not None else getattr(customer, "agent_id", None)
    agent = db.session.get(Agent, agent_id) if agent_id is not None else None
    errors |= agent_errors(agent, quote.start_date)
    if errors:
        raise PolicyInvalid(errors)
    assert agent is not None

    def work() -> Policy:
        taken = db.session.execute(
            update(Quote)
            .where(Quote.id == quote.id, Quote.status == OPEN)
            .values(status=BOUND, updated_by=audit.current_actor())
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:  # bound by someone else meanwhile
            raise IllegalTransition(f"Quote {quote.id} is already bound.", state=BOUND)
        policy = Policy(
            customer_id=quote.customer_id,
            agent_id=agent.id,
            product_id=quote.product_id,
            quote_id=quote.id,
            state=STATE_BOUND,
            start_date=quote.start_date,
            end_date=terms.term_end(quote.risk, quote.start_date),
            payment_frequency=frequency,
            premium=quote.premium,
            currency=quote.currency,
            declarations=answers,
        )
        db.session.add(policy)
        db.session.flush()
        version = new_business_version(
            policy,
            risk=quote.risk,
            trace=quote.trace,
            product_version_id=quote.product_version_id,
            rate_table_version=quote.rate_table_version,
            reason="New business",
        )
        db.session.add(version)
        db.session.flush()
        # The UPDATE above went past the session: what it holds of the quote is stale.
        db.session.expire(quote)
        audit.record(
            "policies.bind",
            entity="policies",
            entity_id=policy.id,
            after=snapshot(policy),
            details={"quote": quote_id, "version": version_snapshot(version)},
        )
        return policy

    return committed(work, keep_loaded=True)


def issue(policy_id: int, *, user: Any = None) -> Policy:
    """Give a bound policy its number and put it in force."""
    authorize("policies:update", user)

    def work() -> Policy:
        policy = get_policy(policy_id, user, lock=True)
        issue_locked(policy)
        return policy

    return committed(work, keep_loaded=True)


# --- Endorse --------------------------------------------------------------------------


def _risk_changes(line_code: str, value: Any, errors: Errors) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        errors["risk_changes"] = ["Name at least one risk field and its new value."]
        return {}
    declared = lines.get(line_code)
    known = {field.name for field in declared.line.risk_fields} if declared else set(value)
    for name in value:
        if name not in known:
            errors[f"risk_changes.{name}"] = ["This product has no such risk field."]
        elif name in FIXED_AT_BINDING:
            errors[f"risk_changes.{name}"] = ["The term is fixed at binding: quote a new policy."]
    return dict(value)


def _in_term(policy: Policy, day: date | None, field: str, errors: Errors) -> None:
    if day is not None and not policy.start_date <= day < policy.end_date:
        errors[field] = [
            f"Must be within the term, {policy.start_date.isoformat()} to "
            f"{policy.end_date.isoformat()} (the day before it ends at the latest)."
        ]


def _not_before(version: PolicyVersion, day: date | None, field: str, errors: Errors) -> None:
    if day is not None and field not in errors and day < version.effective_from:
        errors[field] = [
            f"Version {version.version} is effective from {version.effective_from.isoformat()}; "
            "a change cannot take effect before it."
        ]


def _rating_errors(refused: RatingRefused) -> Errors:
    """A refusal of the endorsed risk, named after the request's fields."""
    named: Errors = {}
    for name, messages in refused.errors.items():
        if name.startswith("risk."):
            named[f"risk_changes.{name[5:]}"] = messages
        else:
            named[name if name != "risk" else "risk_changes"] = messages
    return named


def endorse(
    policy_id: int,
    *,
    effective_from: Any,
    risk_changes: Any,
    reason: Any,
    user: Any = None,
) -> PolicyVersion:
    """A new version of an in-force policy from `effective_from`, its risk changed by
    `risk_changes` (a null value removes a field), re-rated on the product version in
    force on the policy's start date, with the pro-rata premium difference for the rest
    of the policy year as its adjustment."""
    authorize("policies:update", user)

    def work() -> PolicyVersion:
        policy = get_policy(policy_id, user, lock=True)
        if policy.state != IN_FORCE:
            raise IllegalTransition(
                f"Policy {policy.number or policy.id} is not in force: it cannot be endorsed.",
                state=policy.state,
            )
        current = current_version(policy)
        product = db.session.get(Product, policy.product_id)
        assert product is not None
        errors: Errors = {}
        day = rules.parse_date(effective_from, "effective_from", errors)
        _in_term(policy, day, "effective_from", errors)
        _not_before(current, day, "effective_from", errors)
        changes = _risk_changes(product.line_code, risk_changes, errors)
        text = rules.check_reason(reason, errors)
        risk = {k: v for k, v in {**current.risk, **changes}.items() if v is not None}
        if changes and not errors and risk == current.risk:
            errors["risk_changes"] = ["These values are the policy's already: nothing changes."]
        rated = None
        if not any(k == "risk_changes" or k.startswith("risk_changes.") for k in errors):
            try:
                rated = rating.rate(product.line_code, risk, policy.start_date)
            except RatingRefused as refused:
                errors |= _rating_errors(refused)
        if errors:
            raise PolicyInvalid(errors)
        assert rated is not None and day is not None
        difference = rated.premium - current.premium
        version = PolicyVersion(
            policy_id=policy.id,
            version=current.version + 1,
            kind=ENDORSEMENT,
            effective_from=day,
            risk=rated.risk,
            premium=rated.premium,
            adjustment=terms.prorata(difference, policy.start_date, policy.end_date, day),
            currency=rated.currency,
            trace=rated.trace,
            product_version_id=rated.version.id,
            rate_table_version=rated.rate_table_version,
            reason=text,
        )
        db.session.add(version)
        before = snapshot(policy)
        policy.premium = rated.premium
        db.session.flush()
        audit.record(
            "policies.endorse",
            entity="policies",
            entity_id=policy.id,
            before=before,
            after=snapshot(policy),
            details={"version": version_snapshot(version), "risk_changes": changes},
        )
        # An offer made on the old risk no longer fits: re-rate it on the new one.
        renewals.refresh_open_offers(policy, version)
        return version

    return committed(work)


# --- Cancel ---------------------------------------------------------------------------


def cancel(policy_id: int, *, effective_on: Any, reason: Any, user: Any = None) -> PolicyVersion:
    """Cancel from `effective_on`: a cancellation version returning the current annual
    premium pro-rata for the unexpired days of the policy year (a negative adjustment),
    the policy `cancelled`, and its open renewal offers withdrawn."""
    authorize("policies:update", user)

    def work() -> PolicyVersion:
        policy = get_policy(policy_id, user, lock=True)
        lifecycle.check(policy, CANCELLED, "be cancelled")
        current = current_version(policy)
        errors: Errors = {}
        day = rules.parse_date(effective_on, "effective_on", errors)
        _in_term(policy, day, "effective_on", errors)
        _not_before(current, day, "effective_on", errors)
        text = rules.check_reason(reason, errors)
        if errors:
            raise PolicyInvalid(errors)
        assert day is not None
        returned = terms.prorata(current.premium, policy.start_date, policy.end_date, day)
        version = PolicyVersion(
            policy_id=policy.id,
            version=current.version + 1,
            kind=CANCELLATION,
            effective_from=day,
            risk=current.risk,
            premium=current.premium,
            adjustment=-returned,
            currency=current.currency,
            trace=current.trace,
            product_version_id=current.product_version_id,
            rate_table_version=current.rate_table_version,
            reason=text,
        )
        db.session.add(version)
        before = snapshot(policy)
        was = policy.state
        policy.state = CANCELLED
        policy.cancelled_on = day
        policy.cancel_reason = text
        db.session.execute(
            update(RenewalOffer)
            .where(RenewalOffer.policy_id == policy.id, RenewalOffer.status == OFFERED)
            .values(
                status=WITHDRAWN, decided_at=datetime.now(UTC), decided_by=audit.current_actor()
            )
            .execution_options(synchronize_session=False)
        )
        db.session.flush()
        audit.record(
            "policies.cancel",
            entity="policies",
            entity_id=policy.id,
            before=before,
            after=snapshot(policy),
            details={
                "from_state": was,
                "return_premium": returned,
                "version": version_snapshot(version),
            },
        )
        return version

    return committed(work)
