"""Shared pieces of the policy writers (core.policies.operations and .renewals): one
transaction per operation, the audited snapshots, the current version, the agent
rule at binding, version 1 of a policy, and issuing a number.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import select

from core import audit, numbering, settings
from core.agents.models import Agent
from core.agents.rules import can_bind
from core.db import db
from core.policies import lifecycle
from core.policies.lifecycle import IllegalTransition
from core.policies.models import IN_FORCE, NEW_BUSINESS, STATE_BOUND, Policy, PolicyVersion
from core.policies.rules import Errors
from core.security import scope

T = TypeVar("T")

NUMBER_KIND = "policy"
NUMBER_PATTERN_SETTING = "policy_number_pattern"
INT_MAX = 2**31 - 1


def snapshot(policy: Policy) -> dict[str, Any]:
    return audit.snapshot(policy, exclude=("declarations",))


def version_snapshot(version: PolicyVersion) -> dict[str, Any]:
    return audit.snapshot(version, exclude=("trace", "risk"))


def checked_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT_MAX:
        raise scope.OutOfReach()
    return value


def get_policy(policy_id: int, user: Any = None, *, lock: bool = False) -> Policy:
    """The policy if within the caller's reach (OutOfReach otherwise); `lock` takes its
    row lock, so that state changes of one policy happen one after the other."""
    return scope.get_or_404(Policy, checked_id(policy_id), user=user, lock=lock)


def current_version(policy: Policy) -> PolicyVersion:
    """The latest version: the terms in force now."""
    return db.session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.policy_id == policy.id)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
    ).one()


def agent_errors(agent: Agent | None, start: date) -> Errors:
    """Why `agent` may not place business starting on `start`, if they may not."""
    if agent is None:
        return {
            "agent_id": [
                "No agent places this business: assign the customer to a licensed agent first."
            ]
        }
    if not can_bind(agent, start):
        why = (
            "is no longer an active agent"
            if not agent.is_active
            else f"holds licence {agent.licence_number}, valid until "
            f"{agent.licence_expires_on.isoformat()}, not on the start date {start.isoformat()}"
        )
        return {"agent_id": [f"The agent {why}: they cannot bind this policy."]}
    return {}


def new_business_version(
    policy: Policy,
    *,
    risk: dict[str, Any],
    trace: list[dict[str, Any]],
    product_version_id: int,
    rate_table_version: str,
    reason: str,
) -> PolicyVersion:
    """Version 1 of a policy. Its adjustment is the premium of the first policy year,
    the whole annual premium (billing charges each later year as it starts)."""
    return PolicyVersion(
        policy_id=policy.id,
        version=1,
        kind=NEW_BUSINESS,
        effective_from=policy.start_date,
        risk=risk,
        premium=policy.premium,
        adjustment=policy.premium,
        currency=policy.currency,
        trace=trace,
        product_version_id=product_version_id,
        rate_table_version=rate_table_version,
        reason=reason,
    )


def take_number(policy: Policy) -> str:
    """The next number of the tenant's pattern, in the start date's period."""
    pattern = settings.get(NUMBER_PATTERN_SETTING)
    return numbering.next_number(NUMBER_KIND, pattern, on=policy.start_date)


def issue_locked(policy: Policy) -> None:
    """Number a bound policy (its row locked by the caller) and put it in force."""
    lifecycle.check(policy, IN_FORCE, "be issued")
    if policy.state != STATE_BOUND:
        raise IllegalTransition(
            f"Policy {policy.number or policy.id} is issued already.", state=policy.state
        )
    before = snapshot(policy)
    policy.number = take_number(policy)
    policy.state = IN_FORCE
    policy.issued_at = datetime.now(UTC)
    db.session.flush()
    audit.record(
        "policies.issue",
        entity="policies",
        entity_id=policy.id,
        before=before,
        after=snapshot(policy),
    )
