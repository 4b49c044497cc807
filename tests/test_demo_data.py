"""core.demo: the demo brokerage `powerbuyer run` seeds, in a tenant of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from flask import Flask
from flask_security import hash_password
from sqlalchemy import func, select

from core import demo
from core.agents import queries as agent_queries
from core.agents.models import AGENCY, TEAM, Agent, OrgUnit, OrgUnitManager
from core.audit import AuditEntry
from core.customers import queries
from core.customers.models import COMPANY, PERSON, Customer, identity_value
from core.db import db
from core.policies.models import IN_FORCE, OPEN, Policy, Quote
from core.products.models import Product
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import registry
from tenants.admin import admin_engine
from tenants.plugin_cli import enable_plugin
from tenants.provisioning import delete_tenant
from tests.conftest import PASSWORD, make_tenant
from tests.security.conftest import sign_in
from web.cli import DEMO_PLUGINS


@pytest.fixture(scope="module")
def seeded(app: Flask) -> Iterator[tuple[Tenant, demo.Seeded]]:
    tenant = make_tenant(app, f"demo{uuid.uuid4().hex[:8]}")
    # As `powerbuyer run` does for its demo tenant: it sells the in-tree lines.
    for plugin in DEMO_PLUGINS:
        enable_plugin(admin_engine(app), tenant, plugin)
    tenant = registry.by_slug(admin_engine(app), tenant.slug) or tenant
    try:
        with app.app_context(), tenant_context(tenant):
            result = demo.seed(hash_password(PASSWORD))
        assert result is not None
        yield tenant, result
    finally:
        with app.app_context():
            delete_tenant(admin_engine(app), tenant.slug)


def test_seeding_builds_the_brokerage(app: Flask, seeded: tuple[Tenant, demo.Seeded]):
    tenant, result = seeded
    with app.app_context(), tenant_context(tenant):
        units = db.session.scalars(select(OrgUnit)).all()
        assert sorted(u.kind for u in units) == [AGENCY, TEAM, TEAM]
        agency = next(u for u in units if u.kind == AGENCY)
        assert {u.parent_id for u in units if u.kind == TEAM} == {agency.id}

        agents = db.session.scalars(select(Agent)).all()
        assert sorted(a.email for a in agents) == sorted(result.agent_emails)
        assert len(agents) == demo.AGENT_COUNT
        assert {a.team_id for a in agents} == {u.id for u in units if u.kind == TEAM}
        assert all([r.name for r in a.user.roles] == ["agent"] for a in agents)

        manager = db.session.scalars(select(User).where(User.email == result.manager_email)).one()
        assert [r.name for r in manager.roles] == ["manager"]
        managed = db.session.scalars(
            select(OrgUnitManager.unit_id).where(OrgUnitManager.user_id == manager.id)
        ).all()
        assert len(managed) == 1 and managed[0] in {a.team_id for a in agents}

        # The dashboard's licence card: at least one licence runs out within 30 days.
        assert any((a.licence_expires_on - date.today()).days <= 30 for a in agents)

        customers = db.session.scalars(select(Customer)).all()
        assert len(customers) == result.customers == demo.CUSTOMER_COUNT
        assert {c.agent_id for c in customers} == {a.id for a in agents}
        kinds = {c.kind for c in customers}
        assert kinds == {PERSON, COMPANY}
        people = [c for c in customers if c.kind == PERSON]
        # Encrypted at rest, read back through the column type.
        assert all(c.date_of_birth and c.address["city"] and c.email for c in people)
        # The duplicate checks' identity index, as the model would have set it.
        assert all(
            c.identity_index
            and c.identity_index == identity_value(c.first_name, c.last_name, c.date_of_birth)
            for c in people
        )
        assert len({c.email for c in customers}) == len(customers)

        actors = set(db.session.scalars(select(AuditEntry.actor).distinct()))
        assert "system:demo" in actors

        # Motor and life business: open quotes, and policies issued over the past year.
        assert {p.line_code for p in db.session.scalars(select(Product))} == {
            demo.MOTOR,
            demo.LIFE,
        }
        policies = db.session.scalars(select(Policy)).all()
        assert len(policies) == result.policies == demo.POLICIES * 4 // 5
        assert all(p.state == IN_FORCE and p.number for p in policies)
        assert len({p.number for p in policies}) == len(policies)
        assert {p.currency for p in policies} >= {"INR"}
        assert (
            db.session.scalar(select(func.count()).select_from(Quote).where(Quote.status == OPEN))
            == demo.POLICIES // 5
        )


def test_seeding_again_does_nothing(app: Flask, seeded: tuple[Tenant, demo.Seeded]):
    tenant, _ = seeded
    with app.app_context(), tenant_context(tenant):
        before = db.session.scalar(select(func.count()).select_from(Customer))
        assert demo.seed(hash_password(PASSWORD), seed=99) is None
        assert db.session.scalar(select(func.count()).select_from(Customer)) == before
        assert db.session.scalar(select(func.count()).select_from(Agent)) == demo.AGENT_COUNT


def test_an_agent_signs_in_and_sees_only_their_book(app: Flask, seeded: tuple[Tenant, demo.Seeded]):
    tenant, result = seeded
    email = result.agent_emails[1]
    sign_in(app, tenant.slug, email)
    with app.app_context(), tenant_context(tenant):
        user = db.session.scalars(select(User).where(User.email == email)).one()
        own = agent_queries.own_agent(user)
        assert own is not None
        seen: list[Customer] = []
        cursor = None
        while True:
            page = queries.search(queries.Filters(), cursor=cursor, limit=200, user=user)
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        book = db.session.scalar(
            select(func.count()).select_from(Customer).where(Customer.agent_id == own.id)
        )
        assert 0 < len(seen) == book < demo.CUSTOMER_COUNT
        assert {c.agent_id for c in seen} == {own.id}
