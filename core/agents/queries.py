"""Reads about agents: who sees which agents, lists, licence alerts and book counts.

Who sees which agents (the reach rule of `Agent`, core.security.scope):
- the brokerage's administrators (`settings:update`) and API clients granted
  `agents:read` see every agent;
- any other holder of `agents:read` (a manager) sees the agents of the teams below
  the units they manage, found with a recursive query over `org_units`;
- everyone sees their own agent profile.
An agent outside the caller's reach answers 404, like any other object.

Customers follow the same tree (`customers_in_reach`, the reach rule of `Customer` in
core.customers.rules): administrators see every customer, a manager those of the
agents below them and the unassigned ones, an agent their own book. The tenant setting
`agent_book_scope` = "all" widens everyone's book to the whole brokerage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask_login import current_user
from sqlalchemy import CTE, ColumnElement, Select, false, func, or_, select, true

from core import settings
from core.agents.models import TEAM, Agent, OrgUnit, OrgUnitManager
from core.agents.rules import ALERT_DAYS
from core.customers.models import Customer
from core.db import db
from core.security import scope
from core.security.authz import has_permission
from core.security.tokens import ClientPrincipal

# Seeing the whole hierarchy comes with configuring the brokerage: admins hold it,
# managers do not, so a manager's view is the subtree they manage.
ALL_AGENTS = "settings:update"
MANAGES_AGENTS = "agents:read"

PAGE_SIZE = 50
PAGE_MAX = 200


def _subject(user: Any) -> Any:
    return current_user if user is None else user


def sees_all_agents(user: Any = None) -> bool:
    subject = _subject(user)
    if isinstance(subject, ClientPrincipal):
        return has_permission(subject, MANAGES_AGENTS)
    return has_permission(subject, ALL_AGENTS)


def _user_id(user: Any) -> int | None:
    if not getattr(user, "is_authenticated", False) or isinstance(user, ClientPrincipal):
        return None
    return getattr(user, "id", None)


def managed_units(user_id: int) -> CTE:
    """The units `user_id` manages and every unit below them (recursive CTE of ids).

    UNION, not UNION ALL: a cycle (which operations refuse anyway) ends the recursion
    instead of looping."""
    tree = (
        select(OrgUnitManager.unit_id.label("id"))
        .where(OrgUnitManager.user_id == user_id)
        .cte(recursive=True)  # anonymous: unique if one statement holds several
    )
    return tree.union(select(OrgUnit.id).join(tree, OrgUnit.parent_id == tree.c.id))


def _managed_agent_ids(user_id: int) -> Select[tuple[int]]:
    tree = managed_units(user_id)
    return select(Agent.id).where(Agent.team_id.in_(select(tree.c.id)))


@scope.reach(Agent)
def _agents_in_reach(user: Any) -> ColumnElement[bool]:
    if sees_all_agents(user):
        return true()
    user_id = _user_id(user)
    if user_id is None:
        return false()
    own = Agent.user_id == user_id
    if not has_permission(user, MANAGES_AGENTS):
        return own
    return or_(own, Agent.id.in_(_managed_agent_ids(user_id)))


@scope.reach(OrgUnit)
def _units_in_reach(user: Any) -> ColumnElement[bool]:
    if sees_all_agents(user):
        return true()
    user_id = _user_id(user)
    if user_id is None or not has_permission(user, MANAGES_AGENTS):
        return false()
    return OrgUnit.id.in_(select(managed_units(user_id).c.id))


def subtree_agent_ids(user: Any = None) -> list[int]:
    """The ids of the agents `user` (default: current user) may see, in id order."""
    statement = scope.scoped(select(Agent.id), Agent, _subject(user)).order_by(Agent.id)
    return list(db.session.scalars(statement))


def own_agent(user: Any = None) -> Agent | None:
    """The caller's own agent profile, if they are an agent."""
    user_id = _user_id(_subject(user))
    if user_id is None:
        return None
    return db.session.scalars(select(Agent).where(Agent.user_id == user_id)).one_or_none()


def sees_every_customer(user: Any = None) -> bool:
    """True for callers whose reach is every customer of the brokerage: those who see
    every agent (admins, API clients granted agents:read), and every signed-in caller
    when the tenant widened agents' books to the whole brokerage."""
    subject = _subject(user)
    if sees_all_agents(subject):
        return True
    widened = settings.get(scope.BOOK_SCOPE_SETTING) == "all"
    return bool(getattr(subject, "is_authenticated", False)) and widened


def manages_customers(user: Any = None) -> bool:
    """True for callers who may give customers to agents other than themselves and keep
    customers unassigned: those who see every customer, and managers (within their
    subtree)."""
    subject = _subject(user)
    if sees_every_customer(subject):
        return True
    return _user_id(subject) is not None and has_permission(subject, MANAGES_AGENTS)


def own_agent_ids(user_id: int) -> Select[tuple[int]]:
    """SQL: the active agent profile of `user_id` (a subquery, never a round trip)."""
    return select(Agent.id).where(Agent.user_id == user_id, Agent.is_active)


def customers_in_reach(agent_column: Any, user: Any = None) -> ColumnElement[bool]:
    """Rows whose `agent_column` (an agents.id) the caller reaches: every row for those
    who see every customer; for a manager, those of their own agent profile, of the
    agents of their subtree, and unassigned rows (someone must see those to assign
    them); for anyone else, their own active agent profile's rows."""
    subject = _subject(user)
    if sees_every_customer(subject):
        return true()
    user_id = _user_id(subject)
    if user_id is None:
        return false()
    own = agent_column.in_(own_agent_ids(user_id))
    if not has_permission(subject, MANAGES_AGENTS):
        return own
    return or_(own, agent_column.is_(None), agent_column.in_(_managed_agent_ids(user_id)))


# --- lists --------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Agent]
    next_cursor: int | None


def list_agents(
    *, after: int | None = None, limit: int = PAGE_SIZE, team_id: int | None = None
) -> Page:
    """A page of the agents the current user may see, by id (keyset: `after` is the
    last id of the previous page)."""
    limit = max(1, min(limit, PAGE_MAX))
    statement = scope.scoped(select(Agent), Agent).order_by(Agent.id).limit(limit + 1)
    if after is not None:
        statement = statement.where(Agent.id > after)
    if team_id is not None:
        statement = statement.where(Agent.team_id == team_id)
    rows = list(db.session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more else None)


@dataclass
class UnitNode:
    """A unit in the hierarchy screen, with its child units and (teams) its agents."""

    unit: OrgUnit
    children: list[UnitNode] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)


@dataclass(frozen=True)
class Hierarchy:
    roots: list[UnitNode]
    # Visible agents in no visible team (no team yet, or a team outside the view).
    unplaced: list[Agent]


def hierarchy() -> Hierarchy:
    """The units and agents the current user may see, as a tree. Units whose parent is
    out of view are shown at the top (a manager's own team, say)."""
    units = list(db.session.scalars(scope.scoped(select(OrgUnit), OrgUnit).order_by(OrgUnit.name)))
    agents = list(
        db.session.scalars(scope.scoped(select(Agent), Agent).order_by(Agent.licence_number))
    )
    nodes = {unit.id: UnitNode(unit) for unit in units}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.unit.parent_id) if node.unit.parent_id else None
        (parent.children if parent else roots).append(node)
    unplaced = []
    for agent in sorted(agents, key=lambda a: a.user.email):
        node = nodes.get(agent.team_id) if agent.team_id else None
        (node.agents if node else unplaced).append(agent)
    return Hierarchy(roots, unplaced)


def teams() -> list[OrgUnit]:
    """The active teams the current user may place agents in."""
    statement = scope.scoped(
        select(OrgUnit).where(OrgUnit.kind == TEAM, OrgUnit.is_active), OrgUnit
    )
    return list(db.session.scalars(statement.order_by(OrgUnit.name)))


# --- licences -----------------------------------------------------------------------


def expiring_licences(days: int = ALERT_DAYS, today: date | None = None) -> list[Agent]:
    """Active agents the current user may see whose licence expires within `days` days
    of `today`, or has expired; soonest first."""
    limit = (today or date.today()) + timedelta(days=days)
    statement = scope.scoped(
        select(Agent).where(Agent.is_active, Agent.licence_expires_on <= limit), Agent
    )
    return list(db.session.scalars(statement.order_by(Agent.licence_expires_on, Agent.id)))


# --- books --------------------------------------------------------------------------


def book_counts(agent_ids: Iterable[int]) -> dict[int, int]:
    """Active customers per agent, for the given agents (0 for an empty book)."""
    ids = list(agent_ids)
    counts = dict.fromkeys(ids, 0)
    if ids:
        statement = (
            select(Customer.agent_id, func.count())
            .where(Customer.agent_id.in_(ids), Customer.is_active)
            .group_by(Customer.agent_id)
        )
        counts.update({agent_id: count for agent_id, count in db.session.execute(statement)})
    return counts


def book(agent_id: int, *, after: int | None = None, limit: int = PAGE_SIZE) -> list[Customer]:
    """An agent's active customers within the caller's reach, by id (keyset: `after`)."""
    statement = scope.scoped(
        select(Customer).where(
            Customer.agent_id == agent_id,
            Customer.is_active,
            customers_in_reach(Customer.agent_id),
        ),
        Customer,
    )
    if after is not None:
        statement = statement.where(Customer.id > after)
    return list(db.session.scalars(statement.order_by(Customer.id).limit(limit)))


@dataclass(frozen=True)
class TeamBook:
    team: OrgUnit
    agents: int
    customers: int


def team_books() -> list[TeamBook]:
    """Per team the current user may see: its active agents and their active customers."""
    agents = (
        select(Agent.team_id, func.count(Agent.id).label("agents"))
        .where(Agent.is_active)
        .group_by(Agent.team_id)
        .subquery()
    )
    customers = (
        select(Agent.team_id, func.count(Customer.id).label("customers"))
        .join(Customer, Customer.agent_id == Agent.id)
        .where(Customer.is_active)
        .group_by(Agent.team_id)
        .subquery()
    )
    statement = scope.scoped(
        select(
            OrgUnit,
            func.coalesce(agents.c.agents, 0),
            func.coalesce(customers.c.customers, 0),
        )
        .outerjoin(agents, agents.c.team_id == OrgUnit.id)
        .outerjoin(customers, customers.c.team_id == OrgUnit.id)
        .where(OrgUnit.kind == TEAM),
        OrgUnit,
    ).order_by(OrgUnit.name)
    return [
        TeamBook(team, n_agents, n_customers)
        for team, n_agents, n_customers in db.session.execute(statement)
    ]
