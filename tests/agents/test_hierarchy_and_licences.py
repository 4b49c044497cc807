"""Hierarchy helpers, units, licence alerts and can_bind, and the screens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_login import login_user
from sqlalchemy import select

import core.models  # noqa: F401  (every tenant table on Base.metadata)
from core.agents import operations, queries, rules
from core.agents.models import AGENCY, TEAM, Agent
from core.db import Base, db, scope_connection
from core.security.authz import Denied
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests.agents.conftest import World, build_world, customer_agents
from tests.security.conftest import sign_in

ADMIN = "admin@alpha.example.com"


@contextmanager
def acting(app: Flask, tenant: Tenant, email: str) -> Iterator[None]:
    host = f"http://{tenant.slug}.localhost:5000"
    with app.app_context(), tenant_context(tenant), app.test_request_context(base_url=host):
        login_user(db.session.scalars(select(User).where(User.email == email)).one())
        yield


def test_migration_0006_creates_the_tables_the_models_declare(app: Flask, alpha: Tenant):
    mine = {"agents", "org_units", "org_unit_managers"}

    def include(obj, name, type_, reflected, compare_to) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or table.name in mine

    with app.app_context(), db.engine.begin() as conn:
        scope_connection(conn, alpha)
        context = MigrationContext.configure(
            conn,
            opts={"include_object": include, "compare_type": True, "compare_server_default": True},
        )
        assert compare_metadata(context, Base.metadata) == []


def test_subtree_agent_ids_follows_the_units_a_user_manages(
    app: Flask, alpha: Tenant, world: World
):
    with acting(app, alpha, world.manager_a.email):
        assert queries.subtree_agent_ids() == [world.a1, world.a2]
    with acting(app, alpha, world.manager_b.email):
        assert queries.subtree_agent_ids() == [world.b1]
    with acting(app, alpha, world.boss.email):
        assert queries.subtree_agent_ids() == [world.a1, world.a2, world.b1]
    with acting(app, alpha, world.a1_user.email):
        # An agent sees their own profile, nobody else's.
        assert queries.subtree_agent_ids() == [world.a1]
    with acting(app, alpha, ADMIN):
        assert {world.a1, world.a2, world.b1} <= set(queries.subtree_agent_ids())


def test_moving_a_team_moves_its_agents_into_another_managers_view(
    app: Flask, alpha: Tenant, world: World
):
    other = build_world(app, alpha)
    with acting(app, alpha, ADMIN):
        operations.update_unit(world.team_b, {"parent_id": other.agency})
    with acting(app, alpha, world.boss.email):
        assert queries.subtree_agent_ids() == [world.a1, world.a2]
    with acting(app, alpha, other.boss.email):
        assert world.b1 in queries.subtree_agent_ids()


def test_units_refuse_a_bad_shape(app: Flask, alpha: Tenant, world: World):
    with acting(app, alpha, ADMIN):
        with pytest.raises(operations.AgentInvalid) as no_parent:
            operations.create_unit(TEAM, "Orphans")
        assert set(no_parent.value.errors) == {"parent_id"}
        with pytest.raises(operations.AgentInvalid) as under_team:
            operations.create_unit(TEAM, "Deep", parent_id=world.team_a)
        assert under_team.value.errors == {"parent_id": ["No such agency."]}
        child = operations.create_unit(AGENCY, f"Sub {world.tag}", parent_id=world.agency)
        with pytest.raises(operations.AgentInvalid) as cycle:
            operations.update_unit(world.agency, {"parent_id": child.id})
        assert cycle.value.errors == {"parent_id": ["A unit cannot sit below itself."]}
        with pytest.raises(operations.AgentInvalid) as bad:
            operations.create_unit("region", "", manager_ids=[2_000_000_000])
        assert set(bad.value.errors) == {"kind", "name", "manager_ids"}
    # A manager cannot create a unit outside their own subtree.
    with acting(app, alpha, world.manager_a.email), pytest.raises(operations.AgentInvalid):
        operations.create_unit(TEAM, "Sneaky", parent_id=world.agency)
    with acting(app, alpha, world.a1_user.email), pytest.raises(Denied):
        operations.create_unit(AGENCY, "Mine")


def test_can_bind_ends_the_day_after_the_licence_expires():
    agent = Agent(licence_expires_on=date(2026, 1, 31), is_active=True)
    assert rules.can_bind(agent, on=date(2026, 1, 31))
    assert not rules.can_bind(agent, on=date(2026, 2, 1))
    agent.is_active = False
    assert not rules.can_bind(agent, on=date(2026, 1, 1))
    agent.is_active = True
    assert rules.licence_status(agent, on=date(2026, 1, 1)) == "expiring"  # 30 days before
    assert rules.licence_status(agent, on=date(2025, 12, 31)) == "valid"
    assert rules.licence_status(agent, on=date(2026, 2, 1)) == "expired"


def test_expiring_licences_lists_expired_and_soon_expiring_within_reach(app: Flask, alpha: Tenant):
    today = date.today()
    world = build_world(
        app,
        alpha,
        (today - timedelta(days=3), today + timedelta(days=30), today + timedelta(days=31)),
    )
    with acting(app, alpha, ADMIN):
        found = [agent.id for agent in queries.expiring_licences()]
        assert world.a1 in found and world.a2 in found and world.b1 not in found
        assert found.index(world.a1) < found.index(world.a2)
        assert world.b1 in [a.id for a in queries.expiring_licences(days=31)]
    with acting(app, alpha, world.manager_b.email):
        assert (
            queries.expiring_licences(days=31)
            == [a for a in queries.expiring_licences(days=31) if a.id == world.b1]
            != []
        )


def test_the_dashboard_card_lists_licences_needing_attention(app: Flask, alpha: Tenant):
    today = date.today()
    far = today + timedelta(days=400)
    world = build_world(app, alpha, (today - timedelta(days=1), far, today + timedelta(days=2)))
    a1 = sign_in(app, "alpha", ADMIN).get("/").text
    assert 'id="licence-alerts"' in a1
    assert world.a1_user.email in a1
    assert f"a2.{world.tag}" not in a1 and f"b1.{world.tag}" in a1
    team_a = sign_in(app, "alpha", world.manager_a.email).get("/").text
    assert world.a1_user.email in team_a and f"b1.{world.tag}" not in team_a
    agent = sign_in(app, "alpha", world.a1_user.email).get("/").text
    assert 'id="licence-alerts"' not in agent


def test_screens_show_the_hierarchy_book_and_reassign(app: Flask, alpha: Tenant, world: World):
    admin = sign_in(app, "alpha", ADMIN)
    page = admin.get("/agents")
    assert page.status_code == 200
    assert f"Team A {world.tag}" in page.text and world.a1_user.email in page.text
    assert 'data-licence="valid"' in page.text

    show = admin.get(f"/agents/{world.a1}")
    assert show.status_code == 200 and "3 customers" in show.text

    bad = admin.post(f"/agents/{world.a1}", data={"licence_number": "", "licence_expires_on": "x"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text

    form = admin.get(f"/agents/assign?from={world.a1}")
    assert form.status_code == 200 and f"C0 Of {world.tag}" in form.text
    moved = admin.post(
        "/agents/assign",
        data={"from": world.a1, "customer_ids": list(world.customers_a1[:2]), "agent_id": world.a2},
    )
    assert moved.status_code == 303
    agents = customer_agents(app, alpha, world.customers_a1)
    assert list(agents.values()).count(world.a2) == 2
    assert "1 customer" in admin.get(f"/agents/{world.a1}").text

    created = admin.post(
        "/agents",
        data={
            "user_id": world.spare.id,
            "team_id": world.team_b,
            "licence_number": "NEW-1",
            "licence_expires_on": "2030-06-30",
            "territories": "Kent, Essex",
        },
    )
    assert created.status_code == 303
    assert "Kent, Essex" in admin.get(created.headers["Location"]).text

    manager_b = sign_in(app, "alpha", world.manager_b.email)
    assert manager_b.get(f"/agents/{world.a1}").status_code == 404
    assert world.a1_user.email not in manager_b.get("/agents").text
    assert sign_in(app, "alpha", world.a1_user.email).get("/agents").status_code == 403
