"""The only code that writes agents, units and customer assignments.

Each operation authorizes its caller, validates everything before writing (a refusal
raises `AgentInvalid` with field -> messages and writes nothing), writes, audits and
commits: one transaction per call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import select, update

from core import audit
from core.agents import queries
from core.agents.models import (
    AGENCY,
    LICENCE_NUMBER_MAX,
    NAME_MAX,
    TEAM,
    TERRITORY_MAX,
    UNIT_KINDS,
    Agent,
    OrgUnit,
)
from core.customers.models import Customer
from core.db import db
from core.security import scope
from core.security.authz import authorize
from core.security.models import User

Errors = dict[str, list[str]]

TERRITORIES_MAX = 50
ASSIGN_MAX = 10_000
# Dates a licence could sensibly expire on; anything else is a typo.
EARLIEST, LATEST = date(1990, 1, 1), date(2200, 12, 31)
# PostgreSQL `integer`: larger ids cannot exist, and must not reach a query as such.
INT_MAX = 2**31 - 1

AGENT_FIELDS = ("user_id", "team_id", "licence_number", "licence_expires_on", "territories")
AGENT_UPDATABLE = ("team_id", "licence_number", "licence_expires_on", "territories", "is_active")


class AgentInvalid(ValueError):
    """Input an operation refuses; `errors` maps each field to its messages."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("invalid input: " + ", ".join(sorted(errors)))
        self.errors = errors


# --- field checks: each returns the clean value or adds to `errors` -------------------


def parse_id(value: Any) -> int | None:
    """A positive id that fits PostgreSQL's `integer`, from an int or its digits."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 < number <= INT_MAX else None


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or "\x00" in value:
        return None
    value = value.strip()
    return value if 0 < len(value) <= limit else None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        found = value
    elif isinstance(value, str):
        try:
            found = date.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return found if EARLIEST <= found <= LATEST else None


def _territories(value: Any) -> list[str] | None:
    if not isinstance(value, list | tuple) or len(value) > TERRITORIES_MAX:
        return None
    clean: list[str] = []
    for item in value:
        text = _text(item, TERRITORY_MAX)
        if text is None:
            return None
        if text not in clean:
            clean.append(text)
    return clean


def _team(value: Any, errors: Errors) -> int | None:
    """A team id the caller may place agents in, or None (no team) for those who see
    every agent; a manager's agents must be in one of their teams, or they would
    lose sight of them."""
    if value is None or value == "":
        if not queries.sees_all_agents():
            errors["team_id"] = ["Choose one of your teams."]
        return None
    team_id = parse_id(value)
    if team_id is None or team_id not in {team.id for team in queries.teams()}:
        errors["team_id"] = ["No such team."]
    return team_id


def _agent_values(values: Mapping[str, Any], fields: Iterable[str], errors: Errors) -> dict:
    clean: dict[str, Any] = {}
    for name in fields:
        value = values.get(name)
        if name == "team_id":
            clean[name] = _team(value, errors)
        elif name == "licence_number":
            clean[name] = _text(value, LICENCE_NUMBER_MAX)
            if clean[name] is None:
                errors[name] = [
                    f"Enter the licence number (at most {LICENCE_NUMBER_MAX} characters)."
                ]
        elif name == "licence_expires_on":
            clean[name] = _date(value)
            if clean[name] is None:
                errors[name] = [f"Enter a date as YYYY-MM-DD between {EARLIEST} and {LATEST}."]
        elif name == "territories":
            clean[name] = _territories([] if value is None else value)
            if clean[name] is None:
                errors[name] = [
                    f"A list of at most {TERRITORIES_MAX} names of 1 to {TERRITORY_MAX} characters."
                ]
        elif name == "is_active":
            if not isinstance(value, bool):
                errors[name] = ["Must be true or false."]
            clean[name] = value
    return clean


def _unknown(values: Mapping[str, Any], allowed: Iterable[str], errors: Errors) -> None:
    for name in sorted(set(values) - set(allowed)):
        errors[name] = ["Unknown field."]


def _snapshot(agent: Agent) -> dict[str, Any]:
    return audit.snapshot(agent, exclude=("created_at", "updated_at", "created_by", "updated_by"))


# --- agents -------------------------------------------------------------------------


def create_agent(values: Mapping[str, Any]) -> Agent:
    """A new agent profile for an existing user of the brokerage."""
    authorize("agents:create")
    errors: Errors = {}
    _unknown(values, AGENT_FIELDS, errors)
    user_id = parse_id(values.get("user_id"))
    if user_id is None or db.session.get(User, user_id) is None:
        errors["user_id"] = ["No such user."]
    elif db.session.scalar(select(Agent.id).where(Agent.user_id == user_id)) is not None:
        errors["user_id"] = ["This user already has an agent profile."]
    clean = _agent_values(values, [f for f in AGENT_FIELDS if f != "user_id"], errors)
    if errors:
        raise AgentInvalid(errors)
    agent = Agent(user_id=user_id, **clean)
    db.session.add(agent)
    db.session.flush()
    audit.record("agents.create", entity="agents", entity_id=agent.id, after=_snapshot(agent))
    db.session.commit()
    return agent


def update_agent(agent_id: int, values: Mapping[str, Any]) -> Agent:
    """Change an agent the caller may see (404 otherwise); only the fields given."""
    authorize("agents:update")
    agent = scope.get_or_404(Agent, agent_id)
    errors: Errors = {}
    _unknown(values, AGENT_UPDATABLE, errors)
    clean = _agent_values(values, [f for f in AGENT_UPDATABLE if f in values], errors)
    if errors:
        raise AgentInvalid(errors)
    before = _snapshot(agent)
    for name, value in clean.items():
        setattr(agent, name, value)
    after = _snapshot(agent)
    if after != before:
        audit.record(
            "agents.update", entity="agents", entity_id=agent.id, before=before, after=after
        )
        db.session.commit()
    return agent


# --- units --------------------------------------------------------------------------


def _manager_ids(value: Any, errors: Errors) -> list[int]:
    if not isinstance(value, list | tuple):
        errors["manager_ids"] = ["A list of user ids."]
        return []
    ids = [parse_id(v) for v in value]
    known = set(
        db.session.scalars(select(User.id).where(User.id.in_([i for i in ids if i is not None])))
    )
    if any(i is None or i not in known for i in ids):
        errors["manager_ids"] = ["No such user."]
    return sorted(set(i for i in ids if i is not None))


def _parent(kind: str, value: Any, unit_id: int | None, errors: Errors) -> int | None:
    if value is None or value == "":
        if kind == TEAM:
            errors["parent_id"] = ["A team belongs to an agency."]
        elif not queries.sees_all_agents():
            errors["parent_id"] = ["Choose one of your agencies."]
        return None
    parent_id = parse_id(value)
    parent = None
    if parent_id is not None:
        statement = scope.scoped(select(OrgUnit).where(OrgUnit.id == parent_id), OrgUnit)
        parent = db.session.scalars(statement).one_or_none()
    if parent is None or parent.kind != AGENCY:
        errors["parent_id"] = ["No such agency."]
    elif unit_id is not None and _below(parent.id, unit_id):
        errors["parent_id"] = ["A unit cannot sit below itself."]
    return parent_id


def _below(candidate: int, unit_id: int) -> bool:
    """True if `candidate` is `unit_id` or one of its descendants."""
    tree = select(OrgUnit.id).where(OrgUnit.id == unit_id).cte("below", recursive=True)
    tree = tree.union(select(OrgUnit.id).join(tree, OrgUnit.parent_id == tree.c.id))
    return db.session.scalar(select(tree.c.id).where(tree.c.id == candidate)) is not None


def _set_managers(unit: OrgUnit, manager_ids: list[int]) -> None:
    unit.managers = list(db.session.scalars(select(User).where(User.id.in_(manager_ids))))


def _unit_snapshot(unit: OrgUnit) -> dict[str, Any]:
    return {
        "kind": unit.kind,
        "name": unit.name,
        "parent_id": unit.parent_id,
        "manager_ids": sorted(user.id for user in unit.managers),
        "is_active": unit.is_active,
    }


def create_unit(
    kind: str, name: str, parent_id: int | None = None, manager_ids: Iterable[int] = ()
) -> OrgUnit:
    """A new agency or team. Managers see every agent below the unit."""
    authorize("agents:create")
    errors: Errors = {}
    if kind not in UNIT_KINDS:
        errors["kind"] = [f"One of: {', '.join(UNIT_KINDS)}."]
    clean_name = _text(name, NAME_MAX)
    if clean_name is None:
        errors["name"] = [f"Enter a name (at most {NAME_MAX} characters)."]
    parent = _parent(kind, parent_id, None, errors) if kind in UNIT_KINDS else None
    managers = _manager_ids(list(manager_ids), errors)
    if errors:
        raise AgentInvalid(errors)
    unit = OrgUnit(kind=kind, name=clean_name, parent_id=parent)
    db.session.add(unit)
    _set_managers(unit, managers)
    db.session.flush()
    audit.record(
        "org_units.create", entity="org_units", entity_id=unit.id, after=_unit_snapshot(unit)
    )
    db.session.commit()
    return unit


def update_unit(unit_id: int, values: Mapping[str, Any]) -> OrgUnit:
    """Rename, move or re-staff a unit the caller may see (404 otherwise)."""
    authorize("agents:update")
    unit = scope.get_or_404(OrgUnit, unit_id)
    errors: Errors = {}
    _unknown(values, ("name", "parent_id", "manager_ids"), errors)
    name = unit.name
    if "name" in values:
        name = _text(values["name"], NAME_MAX)
        if name is None:
            errors["name"] = [f"Enter a name (at most {NAME_MAX} characters)."]
    parent = unit.parent_id
    if "parent_id" in values:
        parent = _parent(unit.kind, values["parent_id"], unit.id, errors)
    managers = None
    if "manager_ids" in values:
        managers = _manager_ids(values["manager_ids"], errors)
    if errors:
        raise AgentInvalid(errors)
    before = _unit_snapshot(unit)
    unit.name, unit.parent_id = name, parent
    if managers is not None:
        _set_managers(unit, managers)
    after = _unit_snapshot(unit)
    if after != before:
        audit.record(
            "org_units.update", entity="org_units", entity_id=unit.id, before=before, after=after
        )
        db.session.commit()
    return unit


# --- assigning customers ------------------------------------------------------------


def assign_customers(customer_ids: Iterable[Any], agent_id: Any) -> int:
    """Give customers to an agent (or to nobody: `agent_id` None), in one UPDATE.

    Managers and admins may; agents may not (they hold customers:update for their own
    customers, not agents:read). The agent must be active and within the caller's
    hierarchy (else AgentInvalid on agent_id); every customer must be within reach and,
    for a manager, unassigned or in their subtree (else 404, nothing written). Each
    customer whose agent changes gets a `customers.reassign` entry. Returns how many
    changed.
    """
    authorize("customers:update")
    authorize("agents:read")
    errors: Errors = {}
    ids = _customer_ids(customer_ids, errors)
    target = None
    if agent_id is not None:
        target_id = parse_id(agent_id)
        statement = select(Agent.id).where(Agent.id == target_id, Agent.is_active)
        target = db.session.scalar(scope.scoped(statement, Agent)) if target_id else None
        if target is None:
            errors["agent_id"] = ["No such active agent."]
    if errors:
        raise AgentInvalid(errors)
    statement = (
        select(Customer.id, Customer.agent_id)
        .where(
            Customer.id.in_(ids),
            Customer.is_active,
            queries.customers_in_reach(Customer.agent_id),
        )
        .with_for_update()
    )
    current = dict(db.session.execute(scope.scoped(statement, Customer)).all())
    if len(current) != len(ids):
        raise scope.OutOfReach()
    changed = sorted(cid for cid, before in current.items() if before != target)
    if changed:
        db.session.execute(
            update(Customer)
            .where(Customer.id.in_(changed))
            .values(agent_id=target, updated_by=audit.current_actor()),
            execution_options={"synchronize_session": False},
        )
        for cid in changed:
            audit.record(
                "customers.reassign",
                entity="customers",
                entity_id=cid,
                before={"agent_id": current[cid]},
                after={"agent_id": target},
            )
    db.session.commit()
    return len(changed)


def _customer_ids(value: Any, errors: Errors) -> list[int]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        errors["customer_ids"] = ["A list of customer ids."]
        return []
    raw = list(value)
    ids = [parse_id(v) for v in raw]
    if not raw:
        errors["customer_ids"] = ["Choose at least one customer."]
    elif len(raw) > ASSIGN_MAX:
        errors["customer_ids"] = [f"At most {ASSIGN_MAX} customers at a time."]
    elif any(i is None for i in ids):
        errors["customer_ids"] = ["Customer ids are positive whole numbers."]
    return sorted({i for i in ids if i is not None})
