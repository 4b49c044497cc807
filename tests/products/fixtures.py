"""Fixtures for products, rating and quotes: a tenant that sells motor and term life.

tests/products/conftest.py and the quote tests under tests/policies import them
(`from tests.products.fixtures import *`); each place that does gets its own copies of
the session fixtures, so `quoting` provisions the tenant once and finds it after.

`quoting` is a tenant of its own with the premium_motor and premium_life plugins
enabled (alpha and beta enable none, and other packages' tests count on that), and
both products enabled on their default tables from DEFAULT_EFFECTIVE_FROM. Callers of
each role are made once; beta's manager is the caller of another tenant.
Tests that add versions or tables do it in a rolled-back session, or from dates no
other test quotes on, so the order of tests does not matter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from flask import Flask

from core.agents.models import Agent
from core.db import db
from core.products import operations
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import registry
from tenants.admin import admin_engine
from tenants.plugin_cli import enable_plugin
from tests.conftest import HostClient, host_client, make_tenant
from tests.customers.conftest import Caller, created, person
from tests.security.conftest import create_user, sign_in
from tests.security.test_tokens import request_token

MOTOR, LIFE = "motor_private_car", "term_life"
PLUGINS = ("premium_motor", "premium_life")

# PRODUCT.md's reference risk: premium 14,391.12.
REFERENCE_MOTOR = {
    "vehicle_value": "800000",
    "vehicle_age_months": 36,
    "engine_cc": 1197,
    "zone": "A",
    "claim_free_years": 3,
    "voluntary_deductible": "5000",
}
# Age 40, 10 years, 100,000: net 70.88, gross 133.32.
REFERENCE_LIFE = {
    "issue_age": 40,
    "term_years": 10,
    "sum_assured": "100000",
    "sex": "male",
    "smoker": False,
}


@pytest.fixture(scope="session")
def quoting(app: Flask) -> Tenant:
    with app.app_context():
        engine = admin_engine(app)
        tenant = registry.by_slug(engine, "quoting") or make_tenant(app, "quoting")
        for name in PLUGINS:
            enable_plugin(engine, tenant, name)
        found = registry.by_slug(engine, "quoting")
    assert found is not None and set(PLUGINS) <= found.enabled_plugins
    return found


@dataclass(frozen=True)
class Staff(Caller):
    """An API caller who can also sign in to the screens."""

    email: str = ""

    def browser(self) -> HostClient:
        return sign_in(self.app, self.slug, self.email)


def make_staff(
    app: Flask,
    tenant: Tenant,
    role: str,
    *,
    agent: bool = False,
    licence_expires_on: date = date(2099, 12, 31),
) -> Staff:
    """A new user of `role` with a bearer token (and an agent profile if `agent`)."""
    email = f"{role}.{uuid.uuid4().hex[:10]}@{tenant.slug}.example.com"
    user_id = create_user(app, tenant, email, [role])
    agent_id = None
    if agent:
        with app.app_context(), tenant_context(tenant):
            profile = Agent(
                user_id=user_id,
                licence_number=f"LIC-{user_id}",
                licence_expires_on=licence_expires_on,
            )
            db.session.add(profile)
            db.session.commit()
            agent_id = profile.id
    answer = request_token(host_client(app, tenant.slug), email)
    assert answer.status_code == 200, answer.json
    return Staff(app, tenant.slug, user_id, answer.json["access_token"], agent_id, email)


@pytest.fixture(scope="session")
def q_admin(app: Flask, quoting: Tenant) -> Staff:
    return make_staff(app, quoting, "admin")


@pytest.fixture(scope="session")
def q_manager(app: Flask, quoting: Tenant) -> Staff:
    return make_staff(app, quoting, "manager")


@pytest.fixture(scope="session")
def q_agent(app: Flask, quoting: Tenant) -> Staff:
    return make_staff(app, quoting, "agent", agent=True)


@pytest.fixture(scope="session")
def q_other_agent(app: Flask, quoting: Tenant) -> Staff:
    return make_staff(app, quoting, "agent", agent=True)


@pytest.fixture(scope="session")
def q_customer_user(app: Flask, quoting: Tenant) -> Staff:
    return make_staff(app, quoting, "customer")


@pytest.fixture(scope="session")
def beta_quoter(app: Flask, beta: Tenant) -> Staff:
    return make_staff(app, beta, "manager")


def as_user(caller: Caller) -> User:
    """The caller's User in db.session (an app and tenant context must be active)."""
    user = db.session.get(User, caller.user_id)
    assert user is not None
    return user


@pytest.fixture(scope="session")
def products_on(app: Flask, quoting: Tenant, q_admin: Caller) -> dict[str, int]:
    """Motor and term life enabled for `quoting`: line code -> product id."""
    ids = {}
    with app.app_context(), tenant_context(quoting):
        user = as_user(q_admin)
        for code in (MOTOR, LIFE):
            ids[code] = operations.enable_product(code, user=user).id
    return ids


@pytest.fixture
def agent_customer(q_agent: Caller, products_on: dict[str, int]) -> dict[str, Any]:
    """A new customer in q_agent's book."""
    return created(q_agent, person())


def quote_body(customer_id: int, product: str = MOTOR, **changes: Any) -> dict[str, Any]:
    risk = dict(REFERENCE_MOTOR if product == MOTOR else REFERENCE_LIFE)
    body: dict[str, Any] = {
        "product": product,
        "customer_id": customer_id,
        "start_date": date.today().isoformat(),
        "risk": risk,
    }
    risk.update(changes.pop("risk", {}))
    body.update(changes)
    return body
