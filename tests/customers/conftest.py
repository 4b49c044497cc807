"""Fixtures for the customers tests: API callers of each kind, with bearer tokens.

Callers are made fresh for this package (users with one default role; agents with an
agent profile), so other packages' users and their data do not matter here. In alpha,
`agent` and `other_agent` work in one team that `manager` manages (a manager sees the
customers of their subtree, core.agents.queries.customers_in_reach). Customers
created through the API are committed: names are random, so no two tests' customers
look like duplicates of each other.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from core.agents.models import AGENCY, TEAM, Agent, OrgUnit, OrgUnitManager
from core.db import db
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests.conftest import host_client
from tests.security.test_tokens import make_user, user_tokens


@dataclass(frozen=True)
class Caller:
    """Someone calling the API on one tenant's host."""

    app: Flask
    slug: str
    user_id: int
    token: str
    agent_id: int | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        client = host_client(self.app, self.slug)
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)


def make_team(app: Flask, tenant: Tenant, *, manager_id: int | None = None) -> int:
    """A new team (under a new agency), managed by user `manager_id` if given."""
    with app.app_context(), tenant_context(tenant):
        agency = OrgUnit(kind=AGENCY, name=f"Agency {word()}")
        db.session.add(agency)
        db.session.flush()
        team = OrgUnit(kind=TEAM, name=f"Team {word()}", parent_id=agency.id)
        db.session.add(team)
        db.session.flush()
        if manager_id is not None:
            db.session.add(OrgUnitManager(unit_id=team.id, user_id=manager_id))
        db.session.commit()
        return team.id


def manage_agents(app: Flask, tenant: Tenant, manager_email: str, agent_ids: list[int]) -> int:
    """Put the agents in a new team managed by the user `manager_email`; the team's id."""
    with app.app_context(), tenant_context(tenant):
        manager_id = db.session.scalars(select(User.id).where(User.email == manager_email)).one()
    team_id = make_team(app, tenant, manager_id=manager_id)
    with app.app_context(), tenant_context(tenant):
        db.session.execute(update(Agent).where(Agent.id.in_(agent_ids)).values(team_id=team_id))
        db.session.commit()
    return team_id


def make_caller(
    app: Flask, tenant: Tenant, role: str, *, agent: bool = False, team_id: int | None = None
) -> Caller:
    user = make_user(app, tenant, (role,))
    agent_id = None
    if agent:
        with app.app_context(), tenant_context(tenant):
            profile = Agent(
                user_id=user.id,
                team_id=team_id,
                licence_number=f"LIC-{user.id}",
                licence_expires_on=date(2099, 12, 31),
            )
            db.session.add(profile)
            db.session.commit()
            agent_id = profile.id
    token = user_tokens(host_client(app, tenant.slug), user)["access_token"]
    return Caller(app, tenant.slug, user.id, token, agent_id)


@pytest.fixture(scope="session")
def manager(app: Flask, alpha: Tenant) -> Caller:
    return make_caller(app, alpha, "manager")


@pytest.fixture(scope="session")
def team(app: Flask, alpha: Tenant, manager: Caller) -> int:
    """The team of `agent` and `other_agent`, managed by `manager`."""
    return make_team(app, alpha, manager_id=manager.user_id)


@pytest.fixture(scope="session")
def admin(app: Flask, alpha: Tenant) -> Caller:
    return make_caller(app, alpha, "admin")


@pytest.fixture(scope="session")
def agent(app: Flask, alpha: Tenant, team: int) -> Caller:
    return make_caller(app, alpha, "agent", agent=True, team_id=team)


@pytest.fixture(scope="session")
def other_agent(app: Flask, alpha: Tenant, team: int) -> Caller:
    return make_caller(app, alpha, "agent", agent=True, team_id=team)


@pytest.fixture(scope="session")
def beta_manager(app: Flask, beta: Tenant) -> Caller:
    return make_caller(app, beta, "manager")


def word(length: int = 8) -> str:
    """A random name-like word: random letters make trigram-unrelated names."""
    return random.choice(string.ascii_uppercase) + "".join(
        random.choices(string.ascii_lowercase, k=length - 1)
    )


def digits(count: int) -> str:
    return "".join(random.choices(string.digits, k=count))


def person(**fields: Any) -> dict[str, Any]:
    """A valid new person, unique: random names, email, phone and national id."""
    first, last = word(), word()
    return {
        "kind": "person",
        "first_name": first,
        "last_name": last,
        "date_of_birth": (date(1940, 1, 1) + timedelta(days=random.randint(0, 25_000))).isoformat(),
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "phone": f"+44 20 {digits(4)} {digits(4)}",
        "national_id": f"{digits(3)}-{digits(2)}-{digits(4)}",
        **fields,
    }


def created(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = caller.call("POST", "/customers?force=true", json=body)
    assert response.status_code == 201, response.json
    return response.json
