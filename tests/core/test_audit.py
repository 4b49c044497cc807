"""The audit trail: who-columns, record(), the append-only hash chain and its verifier.

Tests that commit use a tenant of their own, so what they append (or tamper with)
never shows in another test's chain.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_login import login_user
from flask_security import hash_password
from sqlalchemy import Column, Integer, String, Table, Text, select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core import audit, jobs
from core.audit import AuditEntry, AuditMixin
from core.db import Base, db, scope_connection
from core.security.models import User
from core.tenancy import NoTenantError, Tenant, tenant_context
from tenants.admin import admin_engine
from tests.conftest import PASSWORD, host_client, make_tenant

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_tenant(app: Flask) -> Tenant:
    """A tenant of this test alone, with an empty audit log."""
    return make_tenant(app, f"audit-{uuid.uuid4().hex[:10]}")


def add_user(app: Flask, tenant: Tenant, email: str, role: str) -> int:
    with app.app_context(), tenant_context(tenant):
        user = app.extensions["security"].datastore.create_user(
            email=email, password=hash_password(PASSWORD), roles=[role]
        )
        db.session.commit()
        return user.id


def append(app: Flask, tenant: Tenant, action: str = "test.append", **fields: Any) -> None:
    with app.app_context(), tenant_context(tenant):
        audit.record(action, **fields)
        db.session.commit()


def rows(app: Flask, tenant: Tenant) -> list[Any]:
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        scope_connection(conn, tenant)
        return conn.execute(text("SELECT * FROM audit_log ORDER BY id")).all()


def verify(app: Flask, tenant: Tenant, **kwargs: Any) -> audit.ChainReport:
    with app.app_context():
        return audit.verify_tenant(db.engine, tenant, **kwargs)


def cli_verify(app: Flask, tenant: Tenant, *extra: str) -> Any:
    return app.test_cli_runner().invoke(args=["audit", "verify", "--tenant", tenant.slug, *extra])


@pytest.fixture
def superuser(app: Flask) -> Iterator[Any]:
    """A superuser connection with triggers off, as an attacker with full access has."""
    with admin_engine(app).connect() as conn:
        assert conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
        conn.execute(text("SET session_replication_role = replica"))
        yield conn
        conn.commit()


# Strings and numbers that a hand-written canonical form most easily gets wrong.
AWKWARD = {
    "quote": 'say "hi"',
    "backslash": "C:\\tmp\\x",
    "controls": "a\nb\tc\r\x01\x1f\x7f",
    "unicode": "é ß 日本 😀 \u2028 \u2029",
    "nul": "before\x00after",
    "numbers": [0.1, 1e-10, 1e20, 10**30, -0.0, 1.5],
    "money": Decimal("1234.50"),
    "nested": {"b": [True, False, None], "aa": {"z": 1, "y": {}}},
}


# --- The chain ----------------------------------------------------------------------


def test_appends_form_one_verified_chain(app: Flask, own_tenant: Tenant) -> None:
    append(app, own_tenant, "test.first", entity="things", entity_id=7, after={"name": "x"})
    append(app, own_tenant, "test.awkward", details=AWKWARD, before=AWKWARD, after={})
    append(app, own_tenant, "test.third")

    found = rows(app, own_tenant)
    assert [r.action for r in found] == ["test.first", "test.awkward", "test.third"]
    assert found[0].prev_hash == audit.GENESIS
    assert [r.prev_hash for r in found[1:]] == [r.hash for r in found[:-1]]
    assert found[0].entity_id == "7"
    assert found[0].changes == {"name": {"after": "x"}}
    assert found[1].details["nul"] == "before\ufffdafter"
    assert found[1].details["money"] == "1234.50"  # exact, as a string

    report = verify(app, own_tenant)
    assert report.intact
    assert (report.entries, report.head_id, report.head_hash) == (3, found[-1].id, found[-1].hash)

    result = cli_verify(app, own_tenant)
    assert result.exit_code == 0, result.output
    assert "3 entries, chain intact" in result.output
    assert found[-1].hash in result.output


def test_python_recomputes_the_triggers_bytes(app: Flask, own_tenant: Tenant) -> None:
    append(app, own_tenant, details=AWKWARD)
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        scope_connection(conn, own_tenant)
        row = conn.execute(
            text(
                "SELECT id, at, actor, actor_ip, request_id, action, entity, entity_id, "
                "changes::text AS changes_text, details::text AS details_text, prev_hash, hash, "
                "json_build_array('pb-audit-v1', id::text, "
                "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, "
                "actor_ip, request_id, action, entity, entity_id, changes::text, details::text, "
                "prev_hash)::text AS database_text FROM audit_log"
            )
        ).one()
    fields = row._asdict()
    database_text, stored = fields.pop("database_text"), fields.pop("hash")
    assert audit.canonical_text(**fields) == database_text
    assert audit.row_hash(**fields) == stored


def test_the_trigger_sets_id_time_and_hashes_whatever_is_sent(
    app: Flask, own_tenant: Tenant
) -> None:
    append(app, own_tenant, "test.honest")
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        scope_connection(conn, own_tenant)
        conn.execute(
            text(
                "INSERT INTO audit_log (id, at, actor, action, prev_hash, hash) VALUES "
                "(999999, '2000-01-01', 'system', 'test.forged', 'forged', 'forged')"
            )
        )
    honest, forged = rows(app, own_tenant)
    assert forged.id == honest.id + 1
    assert forged.at > honest.at
    assert forged.prev_hash == honest.hash
    assert forged.hash not in ("forged", honest.hash)
    assert verify(app, own_tenant).intact


def test_an_edit_by_the_superuser_is_reported(app: Flask, own_tenant: Tenant, superuser) -> None:
    for n in range(4):
        append(app, own_tenant, details={"n": n})
    target = rows(app, own_tenant)[2]
    superuser.execute(
        text(f'UPDATE "{own_tenant.schema}".audit_log SET changes = :c WHERE id = :id'),
        {"c": json.dumps({"amount": {"after": 1}}), "id": target.id},
    )
    superuser.commit()

    report = verify(app, own_tenant)
    assert (report.broken_id, report.problem) == (target.id, "hash mismatch")
    result = cli_verify(app, own_tenant)
    assert result.exit_code == 1
    assert f"chain broken at row {target.id}: hash mismatch" in result.output


def test_a_row_deleted_by_the_superuser_is_reported(
    app: Flask, own_tenant: Tenant, superuser
) -> None:
    for n in range(4):
        append(app, own_tenant, details={"n": n})
    first, second, third, _ = rows(app, own_tenant)
    superuser.execute(
        text(f'DELETE FROM "{own_tenant.schema}".audit_log WHERE id = :id'), {"id": second.id}
    )
    superuser.commit()

    report = verify(app, own_tenant)
    assert (report.broken_id, report.problem) == (third.id, "missing row")
    assert f"row {first.id}" in report.detail
    result = cli_verify(app, own_tenant)
    assert result.exit_code == 1
    assert f"chain broken at row {third.id}: missing row" in result.output


def test_the_last_row_deleted_is_reported_through_the_head(
    app: Flask, own_tenant: Tenant, superuser
) -> None:
    for n in range(3):
        append(app, own_tenant, details={"n": n})
    last = rows(app, own_tenant)[-1]
    superuser.execute(
        text(f'DELETE FROM "{own_tenant.schema}".audit_log WHERE id = :id'), {"id": last.id}
    )
    superuser.commit()

    report = verify(app, own_tenant)
    assert (report.broken_id, report.problem) == (last.id, "missing row")
    assert cli_verify(app, own_tenant).exit_code == 1


def test_rewritten_history_is_caught_by_the_head_and_by_an_anchor(
    app: Flask, own_tenant: Tenant, superuser
) -> None:
    """An attacker who knows the format deletes a row and re-hashes every later row.
    The chain alone then looks whole; the head's count and an anchor kept off-box
    do not."""
    for n in range(3):
        append(app, own_tenant, details={"n": n})
    first, second, third = rows(app, own_tenant)
    anchor = {third.id: third.hash}
    assert verify(app, own_tenant, anchors=anchor).intact

    fields = {k: v for k, v in third._asdict().items() if k not in ("hash", "changes", "details")}
    fields |= {"prev_hash": first.hash, "changes_text": None, "details_text": '{"n": 2}'}
    forged = audit.row_hash(**fields)
    schema = own_tenant.schema
    superuser.execute(text(f'DELETE FROM "{schema}".audit_log WHERE id = :id'), {"id": second.id})
    superuser.execute(
        text(f'UPDATE "{schema}".audit_log SET prev_hash = :p, hash = :h WHERE id = :id'),
        {"p": first.hash, "h": forged, "id": third.id},
    )
    superuser.execute(text(f'UPDATE "{schema}".audit_head SET last_hash = :h'), {"h": forged})
    superuser.commit()

    by_count = verify(app, own_tenant)
    assert by_count.problem == "missing row"
    assert "the head records 3 entries" in by_count.detail
    superuser.execute(text(f'UPDATE "{schema}".audit_head SET entries = 2'))
    superuser.commit()
    assert verify(app, own_tenant).intact  # a perfect rewrite: only an anchor tells
    by_anchor = verify(app, own_tenant, anchors=anchor)
    assert (by_anchor.broken_id, by_anchor.problem) == (third.id, "hash mismatch")
    result = cli_verify(app, own_tenant, "--anchor", f"{third.id}:{third.hash}")
    assert result.exit_code == 1
    assert f"chain broken at row {third.id}" in result.output


def test_the_migration_creates_the_tables_the_models_describe(app: Flask, alpha_db) -> None:
    def ours(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        table = obj if kind == "table" else getattr(obj, "table", None)
        return table is not None and table.name in ("audit_log", "audit_head")

    context = MigrationContext.configure(db.session.connection(), opts={"include_object": ours})
    assert compare_metadata(context, Base.metadata) == []


def test_verify_names_an_unknown_tenant(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["audit", "verify", "--tenant", "no-such"])
    assert result.exit_code == 1
    assert "no tenant with slug 'no-such'" in result.output


# --- Append-only ------------------------------------------------------------------


DENIED = "permission denied"
# The chain trigger updates the head as the application's role, so that one privilege
# stays; the head's own trigger refuses any other update.
HEAD_GUARD = "moves only by appending"
APPLICATION_REFUSALS = [
    ("UPDATE audit_log SET action = 'test.rewritten'", DENIED),
    ("DELETE FROM audit_log", DENIED),
    ("TRUNCATE audit_log", DENIED),
    ("UPDATE audit_head SET entries = 0", HEAD_GUARD),
    ("DELETE FROM audit_head", DENIED),
]


@pytest.mark.parametrize(("statement", "refusal"), APPLICATION_REFUSALS)
def test_the_application_role_may_only_insert(
    app: Flask, alpha: Tenant, statement: str, refusal: str
) -> None:
    append(app, alpha, "test.append_only")
    with app.app_context(), db.engine.connect() as conn:
        attempt = conn.begin()
        scope_connection(conn, alpha)
        with pytest.raises(ProgrammingError, match=refusal):
            conn.execute(text(statement))
        attempt.rollback()
        # The role owns the table and can grant itself the privileges back: the
        # trigger still refuses.
        attempt = conn.begin()
        scope_connection(conn, alpha)
        conn.execute(text("GRANT ALL ON audit_log, audit_head TO CURRENT_USER"))
        with pytest.raises(ProgrammingError, match=r"append-only|moves only by appending"):
            conn.execute(text(statement))
        attempt.rollback()  # the grant goes with it
        with conn.begin():
            scope_connection(conn, alpha)
            assert conn.scalar(text("SELECT count(*) FROM audit_log")) >= 1


def test_the_superuser_meets_the_trigger_too(app: Flask, own_tenant: Tenant) -> None:
    append(app, own_tenant)
    with admin_engine(app).connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text(f'DELETE FROM "{own_tenant.schema}".audit_log'))


# --- Concurrency and crashes --------------------------------------------------------


def test_concurrent_appends_keep_one_chain(app: Flask, own_tenant: Tenant) -> None:
    writers, each = 4, 15
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                append(app, own_tenant, "test.concurrent", details={"writer": n, "i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    found = rows(app, own_tenant)
    assert len(found) == writers * each
    assert len({r.prev_hash for r in found}) == len(found)  # nobody shares a predecessor
    assert [r.at for r in found] == sorted(r.at for r in found)
    report = verify(app, own_tenant)
    assert report.intact and report.entries == writers * each


def test_a_second_append_waits_for_the_first_and_chains_after_it(
    app: Flask, own_tenant: Tenant
) -> None:
    append(app, own_tenant, "test.before")
    done = threading.Event()
    with app.app_context(), db.engine.connect() as first:
        first.begin()
        scope_connection(first, own_tenant)
        first.execute(text("INSERT INTO audit_log (actor, action) VALUES ('system', 'test.a')"))

        second = threading.Thread(target=lambda: (append(app, own_tenant, "test.b"), done.set()))
        second.start()
        assert not done.wait(1.0), "the second append must wait for the first to finish"
        first.commit()
        assert done.wait(10)
        second.join()
    before, a, b = rows(app, own_tenant)
    assert (a.action, b.action) == ("test.a", "test.b")
    assert b.prev_hash == a.hash and a.prev_hash == before.hash
    assert verify(app, own_tenant).intact


KILLED_WRITER = """
import json, sys, time
from sqlalchemy import text
from core import audit
from core.app import create_app
from core.db import db
from tests.conftest import tenant

app = create_app(json.loads(sys.argv[1]))
victim = tenant(app, sys.argv[2])
from core.tenancy import tenant_context
with app.app_context(), tenant_context(victim):
    audit.record("test.killed")
    db.session.begin_nested().commit()  # the row is written, the transaction stays open
    print(db.session.scalar(text("SELECT max(id) FROM audit_log")), flush=True)
    time.sleep(600)
"""


def test_a_writer_killed_mid_append_loses_only_its_own_row(
    app: Flask, app_config: dict, own_tenant: Tenant
) -> None:
    append(app, own_tenant, "test.before")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, json.dumps(app_config), own_tenant.slug],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        uncommitted_id = int(writer.stdout.readline())
        blocked = threading.Thread(target=append, args=(app, own_tenant, "test.after_kill"))
        blocked.start()
        time.sleep(0.5)
        assert blocked.is_alive(), "the killed writer held the chain lock"
    finally:
        writer.kill()
        writer.wait(10)
    blocked.join(30)
    assert not blocked.is_alive()
    append(app, own_tenant, "test.later")

    found = rows(app, own_tenant)
    assert [r.action for r in found] == ["test.before", "test.after_kill", "test.later"]
    assert uncommitted_id not in {r.id for r in found}
    report = verify(app, own_tenant)
    assert report.intact and report.entries == 3


# --- record() -----------------------------------------------------------------------


def test_record_is_part_of_the_callers_transaction(app: Flask, own_tenant: Tenant) -> None:
    with app.app_context(), tenant_context(own_tenant):
        audit.record("test.rolled_back")
        db.session.rollback()
        db.session.commit()
        audit.record("test.committed")
        db.session.commit()
    assert [r.action for r in rows(app, own_tenant)] == ["test.committed"]


def test_record_needs_a_tenant_and_a_dotted_action(app: Flask, alpha_db) -> None:
    with pytest.raises(ValueError, match="dotted"):
        audit.record("Login")
    with tenant_context(None), pytest.raises(NoTenantError):
        audit.record("test.nowhere")


def test_outside_requests_and_jobs_the_actor_is_system(app: Flask, alpha_db) -> None:
    audit.record("test.system")
    db.session.commit()
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.actor, entry.actor_ip, entry.request_id) == ("system", None, None)
    with audit.acting_as("cli:keys-rotate"):
        assert audit.current_actor() == "cli:keys-rotate"


def test_sensitive_values_are_masked_but_their_change_shows(app: Flask, alpha_db) -> None:
    before = {"name": "Ann", "password": "old", "national_id": "111", "email": "a@x.example"}
    after = {"name": "Ann", "password": "new", "national_id": "111", "email": "b@x.example"}
    details = {"reason": "typo", "client": {"api_token": "abc", "keep": 1}, "nin": "222"}
    app.config["AUDIT_MASKED_KEYS"] = ["email", "nin"]
    try:
        audit.record("test.masked", entity="people", before=before, after=after, details=details)
        db.session.commit()
    finally:
        del app.config["AUDIT_MASKED_KEYS"]
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.changes == {
        "password": {"before": "[masked]", "after": "[masked]"},
        "email": {"before": "[masked]", "after": "[masked]"},
    }
    assert entry.details == {
        "reason": "typo",
        "client": {"api_token": "[masked]", "keep": 1},
        "nin": "[masked]",
    }
    stored = db.session.scalar(
        text("SELECT changes::text || details::text FROM audit_log ORDER BY id DESC LIMIT 1")
    )
    for secret in ("old", "new", "111", "a@x.example", "abc", "222"):
        assert secret not in stored


def test_columns_tagged_pii_are_masked(app: Flask, alpha_db) -> None:
    table = Table(
        "audit_pii_probe",
        Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("insurer_ref", Text, info={"pii": "tax_id"}),
        Column("note", Text),
    )
    try:
        assert audit.pii_columns("audit_pii_probe") == {"insurer_ref"}
        audit.record(
            "test.pii",
            entity="audit_pii_probe",
            before={"insurer_ref": "A-1", "note": "x"},
            after={"insurer_ref": "B-2", "note": "y"},
        )
        db.session.commit()
    finally:
        Base.metadata.remove(table)
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.changes == {
        "insurer_ref": {"before": "[masked]", "after": "[masked]"},
        "note": {"before": "x", "after": "y"},
    }


def test_diff_keeps_only_changes_and_marks_creation_and_deletion() -> None:
    assert audit.diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "b": {"before": 2, "after": 3},
        "c": {"after": 4},
    }
    assert audit.diff({"a": 1}, None) == {"a": {"before": 1}}
    assert audit.diff(None, None) is None


# --- Who-columns ----------------------------------------------------------------------


class ProbeBase(DeclarativeBase):
    """Kept off the application's metadata: the table exists only inside a test."""


class Probe(AuditMixin, ProbeBase):
    __tablename__ = "audit_probe"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


def test_who_columns_come_from_the_user_then_a_job(app: Flask, alpha: Tenant, alpha_db) -> None:
    ProbeBase.metadata.create_all(db.session.connection())
    admin = db.session.scalar(select(User).where(User.email == "admin@alpha.example.com"))
    with app.test_request_context(base_url="http://alpha.localhost:5000"):
        login_user(admin)
        probe = Probe(name="created by a person")
        db.session.add(probe)
        db.session.flush()
    assert probe.created_by == probe.updated_by == f"user:{admin.id}"
    assert probe.is_active is True

    job_id = uuid.uuid4()
    token = jobs.running_job.set(job_id)
    try:
        probe.name = "changed by a job"
        db.session.flush()
    finally:
        jobs.running_job.reset(token)
    assert (probe.created_by, probe.updated_by) == (f"user:{admin.id}", f"job:{job_id}")

    untouched = Probe(name="by the system", created_by="import:legacy")
    db.session.add(untouched)
    db.session.flush()
    assert (untouched.created_by, untouched.updated_by) == ("import:legacy", "system")


@jobs.job_type("test.audit_write")
def _audited_job(ctx: jobs.JobContext) -> None:
    db.session.add(Probe(name="written by a job"))
    audit.record("test.job_write", entity="audit_probe")


def test_a_real_job_run_is_the_actor(app: Flask, own_tenant: Tenant) -> None:
    with app.app_context(), tenant_context(own_tenant):
        ProbeBase.metadata.create_all(db.session.connection())
        job = jobs.enqueue("test.audit_write")
        db.session.commit()
        assert jobs.run(own_tenant.id, str(job.id)) == jobs.FINISHED
        probe = db.session.scalars(select(Probe)).one()
    assert probe.created_by == f"job:{job.id}"
    entry = rows(app, own_tenant)[-1]
    assert (entry.action, entry.actor, entry.request_id) == (
        "test.job_write",
        f"job:{job.id}",
        f"job:{job.id}",
    )


# --- In requests --------------------------------------------------------------------


def test_logins_and_logouts_are_recorded_with_request_id_and_ip(
    app: Flask, own_tenant: Tenant
) -> None:
    # A manager: MFA enrolment (required for admins) would stop an admin's login half-way.
    user_id = add_user(app, own_tenant, "manager@audit.example.com", "manager")
    client = host_client(app, own_tenant.slug)
    client.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    response = client.post(
        "/login",
        data={"email": "manager@audit.example.com", "password": PASSWORD},
        headers={"X-Request-ID": "req-login-1"},
    )
    assert response.status_code == 302
    assert client.post("/logout", headers={"X-Request-ID": "req-logout-1"}).status_code == 302

    by_action = {r.action: r for r in rows(app, own_tenant)}
    login, logout = by_action["auth.login"], by_action["auth.logout"]
    assert (login.actor, login.actor_ip, login.request_id) == (
        f"user:{user_id}",
        "203.0.113.7",
        "req-login-1",
    )
    assert (login.entity, login.entity_id, login.details) == (
        "users",
        str(user_id),
        {"via": ["password"]},
    )
    assert (logout.actor, logout.request_id) == (f"user:{user_id}", "req-logout-1")
    assert verify(app, own_tenant).intact


def test_log_details_must_be_json_objects(app: Flask, alpha: Tenant) -> None:
    """A check constraint keeps anything but a JSON object out, raw inserts included."""
    with app.app_context(), db.engine.connect() as conn, conn.begin():
        scope_connection(conn, alpha)
        with pytest.raises(DBAPIError) as caught:
            conn.execute(
                text(
                    "INSERT INTO audit_log (actor, action, details) "
                    "VALUES ('system', 'test.bad', '[1]')"
                )
            )
    assert isinstance(caught.value.orig, psycopg.errors.CheckViolation)
