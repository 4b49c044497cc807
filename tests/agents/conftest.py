"""A small brokerage for each agents test, committed in a tenant under unique names:

    agency (managed by `boss`)
      team A (managed by `manager_a`): agents a1, a2; a1 has customers
      team B (managed by `manager_b`): agent b1, who has customers
    `spare`: a user with no agent profile yet

Rows are written directly: the setup is not what is under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from core.agents.models import AGENCY, TEAM, Agent, OrgUnit, OrgUnitManager
from core.customers.models import Customer
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, host_client
from tests.security.conftest import audit_entries, create_user, last_audit_id  # noqa: F401


@dataclass(frozen=True)
class Person:
    email: str
    id: int


@dataclass(frozen=True)
class World:
    tenant: Tenant
    tag: str
    agency: int
    team_a: int
    team_b: int
    boss: Person
    manager_a: Person
    manager_b: Person
    a1: int
    a2: int
    b1: int
    a1_user: Person
    spare: Person
    customers_a1: tuple[int, ...]
    customers_b1: tuple[int, ...]


def _person(app: Flask, tenant: Tenant, tag: str, name: str, roles: list[str]) -> Person:
    email = f"{name}.{tag}@{tenant.slug}.example.com"
    return Person(email, create_user(app, tenant, email, roles))


def build_world(app: Flask, tenant: Tenant, expiries: tuple[date, date, date] | None = None):
    tag = uuid.uuid4().hex[:8]
    far = date.today() + timedelta(days=400)
    e_a1, e_a2, e_b1 = expiries or (far, far, far)
    boss = _person(app, tenant, tag, "boss", ["manager"])
    manager_a = _person(app, tenant, tag, "manager-a", ["manager"])
    manager_b = _person(app, tenant, tag, "manager-b", ["manager"])
    a1_user = _person(app, tenant, tag, "a1", ["agent"])
    a2_user = _person(app, tenant, tag, "a2", ["agent"])
    b1_user = _person(app, tenant, tag, "b1", ["agent"])
    spare = _person(app, tenant, tag, "spare", ["agent"])
    with app.app_context(), tenant_context(tenant):
        agency = OrgUnit(kind=AGENCY, name=f"Agency {tag}")
        db.session.add(agency)
        db.session.flush()
        team_a = OrgUnit(kind=TEAM, name=f"Team A {tag}", parent_id=agency.id)
        team_b = OrgUnit(kind=TEAM, name=f"Team B {tag}", parent_id=agency.id)
        db.session.add_all([team_a, team_b])
        db.session.flush()
        db.session.add_all(
            [
                OrgUnitManager(unit_id=agency.id, user_id=boss.id),
                OrgUnitManager(unit_id=team_a.id, user_id=manager_a.id),
                OrgUnitManager(unit_id=team_b.id, user_id=manager_b.id),
            ]
        )
        agents = [
            Agent(
                user_id=user.id,
                team_id=team,
                licence_number=f"L-{tag}-{n}",
                licence_expires_on=expiry,
                territories=["North"],
            )
            for n, (user, team, expiry) in enumerate(
                [(a1_user, team_a.id, e_a1), (a2_user, team_a.id, e_a2), (b1_user, team_b.id, e_b1)]
            )
        ]
        db.session.add_all(agents)
        db.session.flush()
        a1, a2, b1 = (agent.id for agent in agents)
        customers = {
            owner: [
                Customer(kind="person", first_name=f"C{n}", last_name=f"Of {tag}", agent_id=owner)
                for n in range(3)
            ]
            for owner in (a1, b1)
        }
        for rows in customers.values():
            db.session.add_all(rows)
        db.session.flush()
        world = World(
            tenant,
            tag,
            agency.id,
            team_a.id,
            team_b.id,
            boss,
            manager_a,
            manager_b,
            a1,
            a2,
            b1,
            a1_user,
            spare,
            tuple(c.id for c in customers[a1]),
            tuple(c.id for c in customers[b1]),
        )
        db.session.commit()
    return world


@pytest.fixture
def world(app: Flask, alpha: Tenant) -> World:
    return build_world(app, alpha)


def bearer(app: Flask, slug: str, email: str) -> dict[str, str]:
    response = host_client(app, slug).post(
        "/api/v1/auth/token", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json['access_token']}"}


@pytest.fixture
def api(app: Flask) -> Callable[..., object]:
    """`api(email, slug="alpha")`: a client on that host sending that user's token."""

    def make(email: str, slug: str = "alpha"):
        client = host_client(app, slug)
        headers = bearer(app, slug, email)
        client.environ_base["HTTP_AUTHORIZATION"] = headers["Authorization"]
        return client

    return make


def agent_of(app: Flask, tenant: Tenant, agent_id: int) -> Agent:
    with app.app_context(), tenant_context(tenant):
        agent = db.session.get(Agent, agent_id)
        db.session.expunge_all()
        return agent


def customer_agents(app: Flask, tenant: Tenant, ids: tuple[int, ...]) -> dict[int, int | None]:
    with app.app_context(), tenant_context(tenant):
        rows = db.session.execute(
            select(Customer.id, Customer.agent_id).where(Customer.id.in_(ids))
        )
        return dict(rows.all())
