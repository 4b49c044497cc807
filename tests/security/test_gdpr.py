"""The GDPR framework (core/gdpr.py): coverage of every tagged column, export, erasure,
retention policies run as the periodic job."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import Column, Date, Integer, MetaData, String, Table, select, text, update

import core.models  # noqa: F401  (every tenant table and its GDPR registration)
from core import gdpr, jobs
from core.audit import AuditEntry
from core.db import Base, db
from core.gdpr import PersonRef, Registry
from core.security.authz import Denied
from core.security.models import User
from core.security.pii import pii, tagged_columns
from core.tenancy import Tenant, tenant_context
from tests.security.pii_support import Note, Person, create_tables, make_registry, scratch_tenant

ERASED = re.compile(r"erased-[0-9a-f]{16}")


def _user(email: str) -> User:
    return db.session.scalars(select(User).where(User.email == email)).one()


def _role_user(role: str, slug: str = "alpha") -> User:
    return _user(f"{role}.user@{slug}.example.com")


def _entries(action: str) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
    )


# --- Coverage ---------------------------------------------------------------------------


def test_every_tagged_column_of_every_tenant_table_is_covered_by_an_exporter():
    assert gdpr.registry.uncovered(Base.metadata) == []


def test_a_tagged_column_nobody_exports_is_reported():
    metadata = MetaData()
    Table(
        "forgotten",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("email", String(255), info=pii("contact", kind="email")),
        Column("note", String(50)),
    )
    assert gdpr.registry.uncovered(metadata) == ["forgotten.email"]
    assert make_registry().uncovered(Person.metadata) == []
    assert Registry().uncovered(Person.metadata) == [
        "pii_people.name",
        "pii_people.email",
        "pii_people.national_id",
        "pii_people.date_of_birth",
        "pii_notes.answer",
    ]


def test_registration_refuses_what_erasure_could_not_do():
    metadata = MetaData()
    born = Table(
        "born",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("born_on", Date, nullable=False, info=pii("contact")),
    )
    short = Table(
        "short",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("email", String(20), nullable=False, info=pii("contact", kind="email")),
    )
    registry = Registry()
    with pytest.raises(ValueError, match=r"born\.born_on cannot hold a pseudonym"):
        registry.register(born, subject=lambda ref: None, erase="pseudonymise")
    with pytest.raises(ValueError, match=r"short\.email is too short"):
        registry.register(short, subject=lambda ref: None, erase="pseudonymise")
    with pytest.raises(ValueError, match="erase must be one of"):
        registry.register(short, subject=lambda ref: None, erase="forget")
    with pytest.raises(ValueError, match="erase_also names no column"):
        registry.register(short, subject=lambda ref: None, erase="shred", erase_also={"x": 1})
    registry.register(short, subject=lambda ref: None, erase="shred")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(short, subject=lambda ref: None, erase="shred")


# --- Export and erasure -----------------------------------------------------------------


def _people() -> tuple[Person, Person]:
    """Ann (with a portal account and two health notes) and Bob, in alpha."""
    create_tables()
    ann = Person(
        name="Ann Smith",
        email="ann@example.com",
        national_id="123-45-6789",
        date_of_birth="1980-05-17",
    )
    bob = Person(name="Bob Jones", email="bob@example.com", national_id="987-65-4321")
    db.session.add_all([ann, bob])
    db.session.flush()
    db.session.add_all(
        [
            Note(person_id=ann.id, answer="asthma"),
            Note(person_id=ann.id, answer="none since 2020"),
            Note(person_id=bob.id, answer="diabetes"),
        ]
    )
    db.session.execute(
        text(
            "INSERT INTO users (email, active, fs_uniquifier, password, tf_phone_number, "
            "current_login_ip, create_datetime, update_datetime) VALUES ('ann@example.com', "
            "true, 'ann-uniquifier', 'argon2-hash', '+44 20 7946 0958', '203.0.113.9', "
            "now(), now())"
        )
    )
    db.session.flush()
    return ann, bob


def test_export_returns_every_tagged_column_decrypted(app: Flask, role_users: dict, alpha_db: None):
    ann, _ = _people()
    registry = make_registry()
    data = registry.export(PersonRef(email="ANN@example.com"), user=_role_user("manager"))

    assert json.loads(json.dumps(data)) == data, "JSON-ready"
    assert data["format"] == "powerbuyer-gdpr-export/1"
    assert data["tenant"] == "alpha"
    assert set(data["tables"]) == {"users", "pii_people", "pii_notes"}
    assert data["tables"]["pii_people"] == [
        {
            "id": ann.id,
            "name": "Ann Smith",
            "email": "ann@example.com",
            "national_id": "123-45-6789",
            "date_of_birth": "1980-05-17",
        }
    ]
    assert [row["answer"] for row in data["tables"]["pii_notes"]] == ["asthma", "none since 2020"]
    [account] = data["tables"]["users"]
    assert account["email"] == "ann@example.com"
    assert account["tf_phone_number"] == "+44 20 7946 0958"
    assert account["current_login_ip"] == "203.0.113.9"
    assert "password" not in account
    # Every tagged column of every table, and nothing of anyone else.
    for entry in registry.entries():
        for row in data["tables"][entry.name]:
            assert {c.name for c, _ in tagged_columns(entry.table)} <= set(row)
    assert "Bob" not in json.dumps(data)

    # Found through the blind index as well.
    by_id = registry.export(
        PersonRef(keys={"national_id": "123 45 6789"}), user=_role_user("admin")
    )
    assert by_id["tables"]["pii_people"] == data["tables"]["pii_people"]

    registry.export(PersonRef(email="ann@example.com"), user=_role_user("admin"))

    first, second, third = _entries("gdpr.export")
    assert first.entity == "person"
    # The person is named by a keyed fingerprint of the request, never by their data.
    assert re.fullmatch(r"[0-9a-f]{16}", first.entity_id)
    assert first.entity_id == third.entity_id != second.entity_id
    assert first.details == {"rows": {"users": 1, "pii_people": 1, "pii_notes": 2}}
    assert "ann" not in json.dumps([first.entity_id, first.details]).lower()


def test_export_needs_the_export_permission(app: Flask, role_users: dict, alpha_db: None):
    _people()
    for role in ("agent", "customer"):
        with pytest.raises(Denied, match="customers:export"):
            make_registry().export(PersonRef(email="ann@example.com"), user=_role_user(role))
    with pytest.raises(Denied):
        make_registry().export(PersonRef(email="ann@example.com"))  # no signed-in user
    assert _entries("gdpr.export") == []


def test_erasure_pseudonymises_what_is_kept_and_removes_the_rest(
    app: Flask, role_users: dict, alpha_db: None
):
    ann, bob = _people()
    registry = make_registry()
    counts = registry.erase(PersonRef(email="ann@example.com"), user=_role_user("manager"))
    assert counts == {"users": 1, "pii_people": 1, "pii_notes": 2}
    db.session.expire_all()

    kept = db.session.get(Person, ann.id)
    assert ERASED.fullmatch(kept.name)
    assert (kept.email, kept.national_id, kept.national_id_index, kept.date_of_birth) == (
        None,
        None,
        None,
        None,
    )
    assert db.session.scalars(select(Note.answer).where(Note.person_id == ann.id)).all() == []
    account = db.session.execute(
        text("SELECT * FROM users WHERE fs_uniquifier = 'ann-uniquifier'")
    ).one()
    assert re.fullmatch(r"erased-[0-9a-f]{16}@erased\.invalid", account.email)
    assert (account.active, account.password, account.tf_phone_number) == (False, None, None)
    assert account.current_login_ip is None

    # Bob is untouched.
    other = db.session.get(Person, bob.id)
    assert (other.name, other.national_id) == ("Bob Jones", "987-65-4321")
    assert db.session.scalars(select(Note.answer).where(Note.person_id == bob.id)).all() == [
        "diabetes"
    ]

    # Nothing left to export, and the erasure is in the audit log without the person.
    after = registry.export(PersonRef(email="ann@example.com"), user=_role_user("admin"))
    assert all(rows == [] for rows in after["tables"].values())
    [entry] = _entries("gdpr.erase")
    assert entry.details == {"rows": counts, "kept": []}
    assert "ann" not in json.dumps(entry.details)


def test_erasure_is_all_or_nothing(app: Flask, role_users: dict, alpha_db: None):
    ann, _ = _people()
    registry = make_registry()
    missing = Table(
        "zz_not_in_this_schema",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("email", String(255), info=pii("contact", kind="email")),
    )
    registry.register(missing, subject=lambda ref: missing.c.email == ref.email, erase="shred")
    db.session.commit()  # the people exist; only the erasure is to be undone
    with pytest.raises(Exception, match="zz_not_in_this_schema"):
        registry.erase(PersonRef(email="ann@example.com"), user=_role_user("admin"))
    db.session.expire_all()
    assert db.session.get(Person, ann.id).national_id == "123-45-6789"
    assert db.session.scalar(select(text("count(*)")).select_from(Note.__table__)) == 3
    assert _entries("gdpr.erase") == []


def test_erasure_needs_the_delete_permission(app: Flask, role_users: dict, alpha_db: None):
    ann, _ = _people()
    with pytest.raises(Denied, match="customers:delete"):
        make_registry().erase(PersonRef(email="ann@example.com"), user=_role_user("agent"))
    db.session.expire_all()
    assert db.session.get(Person, ann.id).name == "Ann Smith"


def test_a_staff_account_through_the_application_registry(
    app: Flask, role_users: dict, alpha_db: None
):
    agent = _role_user("agent")
    agent.tf_phone_number, agent.current_login_ip = "+1 555 0100", "198.51.100.7"
    db.session.flush()
    admin = _role_user("admin")

    data = gdpr.export(PersonRef(user_id=agent.id), user=admin)
    assert data["tables"] == {
        "users": [
            {
                "id": agent.id,
                "email": "agent.user@alpha.example.com",
                "username": None,
                "tf_phone_number": "+1 555 0100",
                "us_phone_number": None,
                "current_login_ip": "198.51.100.7",
                "last_login_ip": None,
            }
        ]
    }
    assert gdpr.erase(PersonRef(user_id=agent.id), user=admin) == {"users": 1}
    db.session.expire_all()
    assert re.fullmatch(r"erased-[0-9a-f]{16}@erased\.invalid", agent.email)
    assert (agent.active, agent.password, agent.tf_phone_number) == (False, None, None)
    # Nobody else's account changed.
    assert admin.email == "admin.user@alpha.example.com" and admin.active


# --- Retention ----------------------------------------------------------------------------


def test_retention_policies_are_validated(app: Flask, role_users: dict, alpha_db: None):
    create_tables()
    registry = make_registry()
    admin = _role_user("admin")
    cases = {
        ("nowhere", 30, "erase"): "entity: 'nowhere' is not a table registered",
        ("users", 30, "erase"): "entity: users declares no age column",
        ("pii_people", 0, "erase"): "keep_days",
        ("pii_people", 30, "burn"): "action",
    }
    for (entity, days, action), message in cases.items():
        with pytest.raises(ValueError, match=message):
            registry.set_policy(entity, days, action, user=admin)
    with pytest.raises(Denied, match="settings:update"):
        registry.set_policy("pii_people", 30, "erase", user=_role_user("manager"))

    registry.set_policy("pii_people", 30, "erase", user=admin)
    policy = registry.set_policy("pii_people", 90, "delete", user=admin)
    assert (policy.keep_days, policy.action) == (90, "delete")
    changes = [e.changes for e in _entries("gdpr.retention_policy")]
    assert changes[-1] == {
        "keep_days": {"before": 30, "after": 90},
        "action": {"before": "erase", "after": "delete"},
    }


def test_the_daily_job_applies_retention_policies(app: Flask, monkeypatch: pytest.MonkeyPatch):
    assert jobs.PERIODIC["gdpr.retention"].every == 24 * 3600
    registry = make_registry()
    monkeypatch.setattr(gdpr, "registry", registry)
    long_ago = datetime.now(UTC) - timedelta(days=400)

    with scratch_tenant(app, "retain") as tenant:
        with app.app_context(), tenant_context(tenant):
            old = Person(name="Old Customer", email="old@example.com", national_id="111-11-1111")
            new = Person(name="New Customer", email="new@example.com", national_id="222-22-2222")
            db.session.add_all([old, new])
            db.session.flush()
            db.session.add_all(
                [Note(person_id=old.id, answer="old answer"), Note(person_id=new.id, answer="new")]
            )
            db.session.flush()
            db.session.execute(
                update(Person).where(Person.id == old.id).values(created_at=long_ago)
            )
            db.session.execute(
                update(Note).where(Note.person_id == old.id).values(created_at=long_ago)
            )
            admin = _user(f"admin@{tenant.slug}.example.com")
            registry.set_policy("pii_people", 365, "erase", user=admin)
            registry.set_policy("pii_notes", 30, "delete", user=admin)
            ids = (old.id, new.id)

        first = _run_retention(app, tenant)
        assert first == {"rows": {"pii_notes": 1, "pii_people": 1}}

        with app.app_context(), tenant_context(tenant):
            erased, kept = (db.session.get(Person, i) for i in ids)
            assert ERASED.fullmatch(erased.name)
            assert (erased.email, erased.national_id) == (None, None)
            assert (kept.name, kept.national_id) == ("New Customer", "222-22-2222")
            notes = db.session.scalars(select(Note.answer)).all()
            assert notes == ["new"]
            details = [e.details for e in _entries("gdpr.retention")]
            actors = {e.actor for e in _entries("gdpr.retention")}
        assert sorted(details, key=str) == [
            {"action": "delete", "rows": 1},
            {"action": "erase", "rows": 1},
        ]
        assert all(actor.startswith("job:") for actor in actors)

        # Idempotent: a second run finds nothing left to do.
        assert _run_retention(app, tenant) == {"rows": {"pii_notes": 0, "pii_people": 0}}


def _run_retention(app: Flask, tenant: Tenant) -> dict:
    with app.app_context(), tenant_context(tenant):
        job_id = jobs.enqueue("gdpr.retention", queue="scheduled").id
        db.session.commit()
    with app.app_context():
        assert jobs.run(tenant.id, str(job_id)) == "finished"
    with app.app_context(), tenant_context(tenant):
        return jobs.get_job(job_id).result
