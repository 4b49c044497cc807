"""Customers' personal data: encrypted at rest, exported, erased without a trace
(database dump, logs, Redis); the schema matches the models."""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from core.customers import operations
from core.customers.models import Customer
from core.db import db
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import provisioning
from tenants.admin import admin_engine
from tests.conftest import make_tenant
from tests.customers.conftest import Caller, created, make_caller, person
from tests.security.conftest import audit_entries, last_audit_id


@pytest.fixture(scope="module")
def gamma(app: Flask) -> Iterator[Tenant]:
    """A tenant of this module's own: exports and erasures commit audit entries that
    other packages' tests of alpha's log must not find."""
    tenant = make_tenant(app, f"cgdpr-{uuid.uuid4().hex[:8]}")
    yield tenant
    provisioning.delete_tenant(admin_engine(app), tenant.slug)


@pytest.fixture(scope="module")
def gamma_manager(app: Flask, gamma: Tenant) -> Caller:
    return make_caller(app, gamma, "manager")


@pytest.fixture(scope="module")
def gamma_agent(app: Flask, gamma: Tenant) -> Caller:
    return make_caller(app, gamma, "agent", agent=True)


def dump(app_config: dict, tenant: Tenant) -> str:
    pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    return subprocess.run(
        [pg_dump, "--schema", tenant.schema, app_config["DATABASE_URL"]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


def test_sensitive_values_are_ciphertext_in_sql(
    app_config: dict, alpha: Tenant, manager: Caller
) -> None:
    customer = created(manager, person(national_id="999-88-7777", date_of_birth="1966-06-06"))
    with psycopg.connect(app_config["DATABASE_URL"]) as conn:
        nid, dob, index = conn.execute(
            f"SELECT national_id, date_of_birth, national_id_index "
            f"FROM {alpha.schema}.customers WHERE id = %s",
            (customer["id"],),
        ).fetchone()
    for value in (nid, dob):
        assert value.startswith("v1:") and "7777" not in value and "1966" not in value
    assert len(index) == 64 and "7777" not in index


def test_export_is_the_customers_data_in_clear_and_audited(
    app: Flask, gamma: Tenant, gamma_manager: Caller, gamma_agent: Caller
) -> None:
    body = person(contacts=[{"label": "mobile", "phone": "+447700900123"}])
    customer = created(gamma_manager, body)
    mark = last_audit_id(app, gamma)
    response = gamma_manager.call("GET", f"/customers/{customer['id']}/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    tables = response.json["tables"]
    (row,) = tables["customers"]
    assert (row["id"], row["national_id"], row["date_of_birth"]) == (
        customer["id"],
        body["national_id"],
        body["date_of_birth"],
    )
    assert [c["phone"] for c in tables["customer_contacts"]] == ["+447700900123"]
    (entry,) = audit_entries(app, gamma, "gdpr.export", mark)
    assert entry.details["rows"]["customers"] == 1
    assert gamma_agent.call("GET", f"/customers/{customer['id']}/export").status_code == 403


def test_erasure_leaves_no_canary_in_the_dump_logs_or_redis(
    app: Flask,
    app_config: dict,
    gamma: Tenant,
    gamma_manager: Caller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = f"canary{uuid.uuid4().hex[:10]}"
    number = str(uuid.uuid4().int)[:9]
    body = {
        "kind": "person",
        "first_name": f"{canary}first",
        "last_name": f"{canary}last",
        "date_of_birth": "1971-07-07",
        "email": f"{canary}@example.com",
        "phone": f"+1555{number[:7]}",
        "national_id": f"NI{canary}",
        "address": {"line1": f"{canary} road", "city": "Leeds"},
        "notes": f"{canary} likes sailing",
        "contacts": [{"label": "work", "email": f"{canary}.work@example.com"}],
    }
    secrets = [canary, number[:7], canary.upper()]
    caplog.set_level(logging.DEBUG)
    customer = created(gamma_manager, body)
    ident = customer["id"]
    # Exercise the reads too: searches, the record, the export.
    gamma_manager.call("GET", "/customers", query_string={"q": body["first_name"]})
    gamma_manager.call("GET", f"/customers/{ident}")
    gamma_manager.call("GET", f"/customers/{ident}/export")
    assert canary in dump(app_config, gamma), "the canary is there before erasure"

    with app.app_context(), tenant_context(gamma):
        user = db.session.get(User, gamma_manager.user_id)
        counts = operations.erase(ident, user=user)
        assert counts == {"customers": 1, "customer_contacts": 1}
        erased = db.session.get(Customer, ident)
        assert erased.first_name.startswith("erased-") and erased.national_id is None
        assert erased.national_id_index is None and erased.contacts == []

    text = dump(app_config, gamma)
    logs = "\n".join(record.getMessage() for record in caplog.records)
    redis = app.extensions["redis"]
    stored = " ".join(repr(redis.dump(key)) + repr(key) for key in redis.scan_iter("*"))
    for secret in secrets:
        assert secret not in text
        assert secret not in logs
        assert secret not in stored
    # Still a customer (the record is kept, pseudonymised), found by nobody's name.
    assert gamma_manager.call("GET", f"/customers/{ident}").json["email"] is None


def test_the_schema_matches_the_models(app: Flask, alpha: Tenant) -> None:
    def ours(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", name) in ("customers", "customer_contacts")

    with app.app_context(), tenant_context(alpha):
        context = MigrationContext.configure(db.session.connection(), opts={"include_object": ours})
        assert compare_metadata(context, db.metadata) == []
