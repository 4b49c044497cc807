"""Fixtures for the policy tests: a tenant that sells a hand-computable test line (and
motor and term life), staff of each role, customers, and helpers that quote, bind and
issue through the API.

`cover` is a tenant of its own (alpha and beta enable no product plugins, and other
packages' tests count on that) with the test line plugin (tests/policies/line_plugin.py),
premium_motor and premium_life enabled, and their products enabled on the lines'
default tables. Staff are made once per session; every test makes its own customers
and policies (committed, through the API), so the order of tests does not matter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask_login import login_user
from werkzeug.test import TestResponse

from core import plugins
from core.db import db
from core.jobs import Job
from core.policies.terms import add_years
from core.products import operations as product_operations
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import registry
from tenants.admin import admin_engine
from tenants.plugin_cli import enable_plugin
from tests.conftest import make_tenant
from tests.core import jobs_support
from tests.customers.conftest import person
from tests.policies.line_plugin import LINE, PLUGIN, TARIFF_LINE, LinePlugin
from tests.policies.line_plugin import LINES as TEST_LINES
from tests.products.fixtures import Staff, make_staff

SLUG = "cover"
MOTOR, LIFE = "motor_private_car", "term_life"
PLUGINS = (PLUGIN, "premium_motor", "premium_life")
LINES = (*TEST_LINES, MOTOR, LIFE)


@pytest.fixture(scope="session")
def cover(app: Flask) -> Tenant:
    host = plugins.manager(app)
    if host.record(PLUGIN) is None:
        host.register(LinePlugin(), PLUGIN)
    tenant = make_tenant(app, SLUG)
    with app.app_context():
        engine = admin_engine(app)
        for name in PLUGINS:
            enable_plugin(engine, tenant, name)
        found = registry.by_slug(engine, SLUG)
    assert found is not None and set(PLUGINS) <= found.enabled_plugins
    return found


@pytest.fixture(scope="session")
def admin(app: Flask, cover: Tenant) -> Staff:
    return make_staff(app, cover, "admin")


@pytest.fixture(scope="session")
def agent(app: Flask, cover: Tenant) -> Staff:
    return make_staff(app, cover, "agent", agent=True)


@pytest.fixture(scope="session")
def other_agent(app: Flask, cover: Tenant) -> Staff:
    return make_staff(app, cover, "agent", agent=True)


@pytest.fixture(scope="session")
def beta_manager(app: Flask, beta: Tenant) -> Staff:
    return make_staff(app, beta, "manager")


@pytest.fixture(scope="session")
def products(app: Flask, cover: Tenant, admin: Staff) -> dict[str, int]:
    """The four lines enabled for `cover`: line code -> product id."""
    with acting(app, cover, admin.user_id):
        user = db.session.get(User, admin.user_id)
        return {code: product_operations.enable_product(code, user=user).id for code in LINES}


@contextmanager
def acting(app: Flask, tenant: Tenant, user_id: int) -> Iterator[User]:
    """Run as `user_id`, signed in on `tenant`'s host (for operations called directly)."""
    base = f"http://{tenant.slug}.{app.config['SERVER_NAME']}"
    with app.app_context(), tenant_context(tenant), app.test_request_context(base_url=base):
        user = db.session.get(User, user_id)
        assert user is not None
        login_user(user)
        yield user


# --- Dates ------------------------------------------------------------------------------


def plain_year_start(after_days: int = 10) -> date:
    """A start date soon after today whose one-year term has 365 days (no 29 February),
    so that figures can be computed by hand."""
    start = date.today() + timedelta(days=after_days)
    while (add_years(start, 1) - start).days != 365:
        start += timedelta(days=1)
    return start


# --- Customers, quotes, policies through the API ----------------------------------------


def new_customer(staff: Staff, **fields: Any) -> dict[str, Any]:
    response = staff.call("POST", "/customers?force=true", json=person(**fields))
    assert response.status_code == 201, response.json
    return response.json


def home_risk(sum_insured: str = "100000", claim_free_years: int = 0, **extra: Any) -> dict:
    return {"sum_insured": sum_insured, "claim_free_years": claim_free_years, **extra}


def quote(
    staff: Staff,
    customer_id: int,
    *,
    line: str = LINE,
    start: date | None = None,
    risk: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "product": line,
        "customer_id": customer_id,
        "start_date": (start or plain_year_start()).isoformat(),
        "risk": risk if risk is not None else home_risk(),
        **extra,
    }
    response = staff.call("POST", "/quotes", json=body)
    assert response.status_code == 201, response.json
    return response.json


def bind(staff: Staff, quote_id: int, **body: Any) -> TestResponse:
    return staff.call("POST", f"/quotes/{quote_id}/bind", json=body)


def bound(staff: Staff, customer_id: int, **quote_args: Any) -> dict[str, Any]:
    answer = bind(staff, quote(staff, customer_id, **quote_args)["id"])
    assert answer.status_code == 201, answer.json
    return answer.json


def issued(staff: Staff, customer_id: int, **quote_args: Any) -> dict[str, Any]:
    policy = bound(staff, customer_id, **quote_args)
    answer = staff.call("POST", f"/policies/{policy['id']}/issue")
    assert answer.status_code == 200, answer.json
    return answer.json


# --- Jobs ---------------------------------------------------------------------------------


def run_job(app: Flask, tenant: Tenant, job_type: str, payload: dict[str, Any], queue: str) -> Job:
    """Enqueue a job for `tenant`, run its queue in this process, and read the row back."""
    job_id = jobs_support.enqueue_committed(app, tenant, job_type, payload, queue=queue)
    jobs_support.drain(app, queue)
    return jobs_support.load_job(app, tenant, job_id)


# --- A second tariff ---------------------------------------------------------------------

NEW_TARIFF_FROM_DAYS = 60


@pytest.fixture(scope="session")
def new_tariff(app: Flask, cover: Tenant, admin: Staff, products: dict[str, int]) -> date:
    """From today + 60 days, `pbtest_tariff` rates on a new table: 2.0%, no-claim
    discounts 0, 10, 25, 40%. Returns the date it takes effect."""
    effective = date.today() + timedelta(days=NEW_TARIFF_FROM_DAYS)
    content = json.dumps(
        {"version": "tariff-2", "rate_percent": "2.0", "ncd_percent": ["0", "10", "25", "40"]}
    ).encode()
    with acting(app, cover, admin.user_id) as user:
        table = product_operations.upload_rate_table(
            TARIFF_LINE, "tariff-2.json", content, user=user
        )
        product_operations.add_product_version(
            products[TARIFF_LINE], effective, table.id, "New tariff", user=user
        )
    return effective
