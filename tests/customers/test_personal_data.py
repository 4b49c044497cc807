"""Customers' personal data: encrypted at rest, exported (checks and their evidence
files included), erased without a trace (database dump, logs, Redis, files on disk);
the schema matches the models."""

from __future__ import annotations

import base64
import io
import logging
import random
import re
import shutil
import string
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from redis import Redis
from sqlalchemy import select

from core import logs
from core.customers import operations, verification
from core.customers.models import Customer
from core.customers.verification import CustomerVerification
from core.db import db
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tenants import provisioning
from tenants.admin import admin_engine
from tests.conftest import make_tenant
from tests.core.jobs_support import drain
from tests.customers.conftest import Caller, created, make_caller, person
from tests.security.conftest import audit_entries, last_audit_id, sign_in
from tests.security.test_tokens import make_user


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
    """The tenant schema's data, as `pg_dump --data-only` writes it."""
    pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    return subprocess.run(
        [pg_dump, f"--schema={tenant.schema}", "--data-only", app_config["DATABASE_URL"]],
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


def _check(app: Flask, tenant: Tenant, user_id: int, customer_id: int, **how: object) -> int:
    with app.test_request_context(), tenant_context(tenant):
        user = db.session.get(User, user_id)
        return verification.record_manual(customer_id, user=user, **how).id  # type: ignore[arg-type]


def test_checks_and_their_evidence_files_are_exported_and_erased_with_the_customer(
    app: Flask, gamma: Tenant, gamma_manager: Caller
) -> None:
    scan = b"%PDF passport " + uuid.uuid4().hex.encode()
    customer, bystander = created(gamma_manager, person()), created(gamma_manager, person())
    how = {"kind": "identity", "outcome": "passed", "reference": "PP-1"}
    with_file = _check(
        app,
        gamma,
        gamma_manager.user_id,
        customer["id"],
        **how,
        evidence_file=("passport.pdf", io.BytesIO(scan)),
        notes="Seen in the branch.",
    )
    credit = _check(app, gamma, gamma_manager.user_id, customer["id"], **{**how, "kind": "credit"})
    kept = _check(
        app,
        gamma,
        gamma_manager.user_id,
        bystander["id"],
        **how,
        evidence_file=("theirs.pdf", io.BytesIO(b"not erased")),
    )
    with app.test_request_context(), tenant_context(gamma):
        rows = {
            row.id: row
            for row in db.session.scalars(
                select(CustomerVerification).where(
                    CustomerVerification.id.in_([with_file, credit, kept])
                )
            )
        }
        folder = verification.evidence_dir()
    file_path, kept_path = (folder / rows[i].evidence["file"] for i in (with_file, kept))

    mark = last_audit_id(app, gamma)
    export = gamma_manager.call("GET", f"/customers/{customer['id']}/export").json
    checks = {row["id"]: row for row in export["tables"]["customer_verifications"]}
    assert sorted(checks) == [with_file, credit]
    assert checks[with_file]["reference"] == "PP-1"
    assert checks[with_file]["evidence"]["notes"] == "Seen in the branch."
    assert (checks[credit]["kind"], checks[credit]["outcome"]) == ("credit", "passed")
    assert checks[credit]["customer_id"] == customer["id"] and checks[credit]["checked_at"]
    (exported,) = export["files"]
    assert exported["table"] == "customer_verifications"
    assert (exported["row"], exported["name"], exported["size"]) == (
        {"id": with_file},
        "passport.pdf",
        len(scan),
    )
    assert base64.b64decode(exported["content_base64"]) == scan
    (entry,) = audit_entries(app, gamma, "gdpr.export", mark)
    assert (entry.details["rows"]["customer_verifications"], entry.details["files"]) == (2, 1)

    with app.app_context(), tenant_context(gamma):
        user = db.session.get(User, gamma_manager.user_id)
        counts = operations.erase(customer["id"], user=user)
        assert counts["customer_verifications"] == 2
        left = select(CustomerVerification.id).where(
            CustomerVerification.id.in_([with_file, credit, kept])
        )
        assert list(db.session.scalars(left)) == [kept]
    assert not file_path.exists()
    assert kept_path.read_bytes() == b"not erased"
    (erasure,) = audit_entries(app, gamma, "gdpr.erase", mark)
    assert erasure.details["files"] == 1 and erasure.details["rows"]["customer_verifications"] == 2


def redis_contents(redis: Redis) -> bytes:
    """Every key of the Redis database and every value under it, whatever its type."""
    parts: list[bytes] = []
    for key in redis.scan_iter("*", count=1000):
        parts.append(key)
        kind = redis.type(key).decode()
        if kind == "string":
            parts.append(redis.get(key) or b"")
        elif kind == "hash":
            for field, value in redis.hgetall(key).items():
                parts += [field, value]
        elif kind == "list":
            parts += redis.lrange(key, 0, -1)
        elif kind == "set":
            parts += list(redis.smembers(key))
        elif kind == "zset":
            parts += [member for member, _ in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for entry_id, fields in redis.xrange(key):
                parts.append(entry_id)
                for field, value in fields.items():
                    parts += [field, value]
        elif kind != "none":  # expired between SCAN and TYPE: nothing to read
            raise AssertionError(f"Redis key {key!r} has a type this test cannot read: {kind}")
    return b"\n".join(parts)


def tenant_files(app: Flask, tenant: Tenant) -> bytes:
    """The content of every file the app keeps for the tenant (uploads, evidence)."""
    folder = Path(app.config["INSTANCE_PATH"]) / "uploads" / tenant.slug
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return b"\n".join(path.name.encode() + b"\n" + path.read_bytes() for path in files)


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """What the app's own log handler (core.logs, JSON lines) writes during the test."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


def test_erasure_leaves_no_canary_in_the_dump_logs_redis_or_files(
    app: Flask,
    app_config: dict,
    gamma: Tenant,
    gamma_manager: Caller,
    caplog: pytest.LogCaptureFixture,
    app_log: io.StringIO,
) -> None:
    canary = f"canary{uuid.uuid4().hex[:10]}"
    number = "".join(random.choices(string.digits, k=7))
    body = {
        "kind": "person",
        "first_name": f"{canary}first",
        "last_name": f"{canary}last",
        "date_of_birth": "1971-07-07",
        "email": f"{canary}@example.com",
        "phone": f"+1555{number}",
        "national_id": f"NI{canary}",
        "address": {"line1": f"{canary} road", "city": f"{canary}ton", "postcode": "LS1 4AP"},
        "notes": f"{canary} likes sailing",
        "contacts": [
            {"label": "work", "email": f"{canary}.work@example.com"},
            {"label": "mobile", "phone": f"+4477009{number}"},
        ],
    }
    # Clear values only: their blind index and pseudonyms are keyed hashes.
    secrets = [canary, canary.upper(), number]
    caplog.set_level(logging.DEBUG)
    staff = make_user(app, gamma, ("manager",)).email
    screens = sign_in(app, gamma.slug, staff)

    # Created over the API, then used the ways staff use a customer: searched and read
    # on screens and over the API, updated, checked by hand with an evidence file,
    # exported, and met again in an import (a duplicate row, skipped).
    customer = created(gamma_manager, body)
    ident = customer["id"]
    for q in (body["first_name"], body["email"], body["national_id"], body["phone"]):
        found = gamma_manager.call("GET", "/customers", query_string={"q": q}).json["items"]
        assert ident in [c["id"] for c in found], q
        page = screens.get(
            "/customers",
            query_string={"q": q},
            headers={"HX-Request": "true", "HX-Target": "customer-results"},
        )
        assert f'id="customer-{ident}"' in page.text, q
    assert canary in screens.get(f"/customers/{ident}").text
    assert canary in gamma_manager.call("GET", f"/customers/{ident}").json["notes"]
    patched = gamma_manager.call("PATCH", f"/customers/{ident}", json={"notes": f"{canary} sails"})
    assert patched.status_code == 200
    check = screens.post(
        f"/customers/{ident}/verifications",
        data={
            "kind": "identity",
            "outcome": "passed",
            "reference": f"PP-{canary}",
            "notes": f"{canary} showed a passport",
            "evidence": (io.BytesIO(f"scan of {canary}".encode()), f"{canary} passport.pdf"),
        },
        headers={"HX-Request": "true"},
    )
    assert check.status_code == 200 and f"PP-{canary}" in check.text
    (check_id,) = (int(i) for i in re.findall(r'id="check-(\d+)"', check.text))
    evidence = screens.get(f"/customers/{ident}/verifications/{check_id}/evidence")
    assert evidence.status_code == 200 and canary.encode() in evidence.data
    assert gamma_manager.call("GET", f"/customers/{ident}/verifications").status_code == 200
    assert canary in gamma_manager.call("GET", f"/customers/{ident}/export").text
    csv_file = f"first_name,last_name,email\n{canary}first,{canary}last,{canary}@example.com\n"
    upload = screens.post(
        "/customers/import", data={"file": (io.BytesIO(csv_file.encode()), "again.csv")}
    )
    started = screens.post(
        upload.headers["Location"],
        data={"map-0": "first_name", "map-1": "last_name", "map-2": "email"},
    )
    assert started.status_code == 303
    drain(app, "bulk")
    assert "0 created, 1 already on file" in screens.get(started.headers["Location"]).text

    # The canaries are there to be found before the erasure.
    assert canary in dump(app_config, gamma)
    assert canary.encode() in tenant_files(app, gamma)

    with app.app_context(), tenant_context(gamma):
        hashed = select(Customer.identity_index).where(Customer.id == ident)
        assert db.session.scalar(hashed) is not None
        user = db.session.get(User, gamma_manager.user_id)
        counts = operations.erase(ident, user=user)
        assert counts == {"customers": 1, "customer_contacts": 2, "customer_verifications": 1}
        erased = db.session.get(Customer, ident)
        assert erased.first_name.startswith("erased-") and erased.national_id is None
        assert erased.national_id_index is None and erased.contacts == []
        assert erased.identity_index is None  # names and birth date: no hash of them left

    text = dump(app_config, gamma)
    logged = "\n".join(
        [caplog.text, app_log.getvalue()]
        + [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records]
    )
    stored = redis_contents(app.extensions["redis"])
    files = tenant_files(app, gamma)
    assert caplog.records and app_log.getvalue(), "the app logged the requests"
    for secret in secrets:
        assert secret not in text, f"{secret} survives in pg_dump"
        assert secret not in logged, f"{secret} survives in the logs"
        assert secret.encode() not in stored, f"{secret} survives in Redis"
        assert secret.encode() not in files, f"{secret} survives in the tenant's files"
    # Still a customer (the record is kept, pseudonymised), found by nobody's name.
    assert gamma_manager.call("GET", f"/customers/{ident}").json["email"] is None
    assert gamma_manager.call("GET", f"/customers?q={body['first_name']}").json["items"] == []


def test_the_schema_matches_the_models(app: Flask, alpha: Tenant) -> None:
    def ours(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", name) in ("customers", "customer_contacts")

    with app.app_context(), tenant_context(alpha):
        context = MigrationContext.configure(db.session.connection(), opts={"include_object": ours})
        assert compare_metadata(context, db.metadata) == []
