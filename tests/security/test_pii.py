"""Personal data in models (core/security/pii.py): tags, encryption at rest, blind indexes
and the masking rule."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date

import psycopg
import pytest
from flask import Flask
from sqlalchemy import Column, MetaData, String, Table, select, text
from sqlalchemy.orm import configure_mappers

import core.models  # noqa: F401  (every tenant table on Base.metadata)
from core.db import Base, db
from core.security import pii
from core.security.crypto import DecryptionError
from core.security.models import User
from core.security.pii import EncryptedString, blind_match, mask, visible
from core.tenancy import Tenant, tenant_context
from tests.conftest import rolled_back_session
from tests.security.pii_support import CANARY, Note, Person, create_tables, scratch_tenant

# --- Tags -----------------------------------------------------------------------------


def test_tags_refuse_what_they_cannot_honour():
    assert pii.pii("contact", kind="email") == {"pii": pii.PiiTag("contact", "email")}
    with pytest.raises(ValueError, match="category"):
        pii.pii("secret")
    with pytest.raises(ValueError, match="unknown pii kind"):
        pii.pii("contact", kind="shoe_size")
    with pytest.raises(ValueError, match="sensitive pii needs a kind"):
        pii.pii("sensitive")
    with pytest.raises(ValueError, match="sensitive pii needs a kind"):
        pii.pii("sensitive", kind="email")
    with pytest.raises(ValueError, match="erase"):
        pii.pii("contact", erase="burn")


def test_no_tenant_table_stores_sensitive_data_in_clear():
    assert pii.problems(Base.metadata) == []


def test_tagging_mistakes_are_found():
    metadata = MetaData()
    Table(
        "mistakes",
        metadata,
        Column("id", String, primary_key=True),
        Column("tax_id", String, info=pii.pii("sensitive", kind="tax_id")),
        Column("secret", EncryptedString()),
        Column("lookup", String(64), info={pii.BLIND_INDEX_OF: "tax_id"}),
    )
    assert pii.problems(metadata) == [
        "mistakes.tax_id is tagged sensitive but is not an EncryptedString",
        "mistakes.secret is an EncryptedString but not tagged pii('sensitive')",
        "mistakes.lookup is a blind index of 'tax_id', not an encrypted column",
    ]


def test_the_users_table_tags_its_personal_data_and_keeps_the_email_in_clear():
    tags = {c.name: pii.tag_of(c) for c in User.__table__.columns if pii.tag_of(c)}
    assert {name: tag.kind for name, tag in tags.items()} == {
        "email": "email",
        "username": "name",
        "tf_phone_number": "phone",
        "us_phone_number": "phone",
        "current_login_ip": "ip_address",
        "last_login_ip": "ip_address",
    }
    # The email is the sign-in name, looked up on every login: tagged, not encrypted.
    assert not isinstance(User.__table__.c.email.type, EncryptedString)


def test_each_encrypted_column_binds_its_own_context():
    configure_mappers()
    assert Person.__table__.c.national_id.type.context == "pii_people.national_id"
    assert Person.__table__.c.date_of_birth.type.context == "pii_people.date_of_birth"
    shared = EncryptedString()
    metadata = MetaData()
    table = Table(
        "two",
        metadata,
        Column("a", shared, info=pii.pii("sensitive", kind="health")),
        Column("b", shared, info=pii.pii("sensitive", kind="health")),
    )
    assert (table.c.a.type.context, table.c.b.type.context) == ("two.a", "two.b")
    pinned = Table("renamed", MetaData(), Column("x", EncryptedString("old_name.x")))
    assert pinned.c.x.type.context == "old_name.x"


def test_sql_cannot_compare_encrypted_values():
    with pytest.raises(TypeError, match="blind index"):
        Person.national_id == "123"  # noqa: B015
    with pytest.raises(TypeError):
        Person.national_id.in_(["123"])
    with pytest.raises(TypeError):
        Person.national_id.like("1%")
    assert "IS NULL" in str(select(Person.id).where(Person.national_id.is_(None)))


# --- Encryption through the ORM -------------------------------------------------------


def test_values_round_trip_and_the_table_holds_ciphertext(app: Flask, alpha_db: None):
    create_tables()
    person = Person(name="Ann", national_id="123-45-6789", date_of_birth="1980-05-17")
    db.session.add(person)
    db.session.flush()
    db.session.expire_all()

    loaded = db.session.get(Person, person.id)
    assert (loaded.national_id, loaded.date_of_birth) == ("123-45-6789", "1980-05-17")
    raw = db.session.execute(
        text("SELECT national_id, date_of_birth FROM pii_people WHERE id = :id"), {"id": person.id}
    ).one()
    for stored in raw:
        assert stored.startswith("v1:")
        assert "6789" not in stored and "1980" not in stored


def test_a_value_moved_to_another_column_does_not_decrypt(app: Flask, alpha_db: None):
    create_tables()
    person = Person(name="Ann", national_id="123-45-6789", date_of_birth="1980-05-17")
    db.session.add(person)
    db.session.flush()
    db.session.execute(text("UPDATE pii_people SET date_of_birth = national_id"))
    db.session.expire_all()
    with pytest.raises(DecryptionError, match=r"pii_people\.date_of_birth"):
        db.session.get(Person, person.id)


def test_a_value_copied_to_another_tenant_does_not_decrypt(app: Flask, alpha: Tenant, beta: Tenant):
    with rolled_back_session(app, alpha):
        create_tables()
        db.session.add(Person(name="Ann", national_id="123-45-6789"))
        db.session.flush()
        stolen = db.session.execute(text("SELECT national_id FROM pii_people")).scalar_one()

    with rolled_back_session(app, beta):
        create_tables()
        db.session.execute(
            text("INSERT INTO pii_people (name, national_id) VALUES ('Eve', :v)"), {"v": stolen}
        )
        with pytest.raises(DecryptionError, match="another tenant"):
            db.session.scalars(select(Person)).all()


def test_the_blind_index_finds_a_value_however_it_is_written(
    app: Flask, alpha_db: None, beta: Tenant
):
    create_tables()
    ann = Person(name="Ann", national_id="123-45-6789")
    bob = Person(name="Bob", national_id="987-65-4321")
    db.session.add_all([ann, bob])
    db.session.flush()

    def found(value: str) -> list[str]:
        query = select(Person.name).where(blind_match(Person.national_id, value))
        return list(db.session.scalars(query))

    assert found(" 123 45 6789 ") == ["Ann"]
    assert found("123.45.6789") == ["Ann"]
    assert found("123-45-6780") == []
    assert len(ann.national_id_index) == 64
    assert "6789" not in ann.national_id_index

    ann.national_id = None
    assert ann.national_id_index is None
    db.session.flush()
    assert found("123-45-6789") == []

    # Another tenant's index key gives another index for the same value.
    alpha_index = bob.national_id_index
    with app.app_context(), tenant_context(beta):
        assert pii.index_value(Person.national_id, "987-65-4321") != alpha_index


def test_raw_sql_and_pg_dump_show_ciphertext_never_plaintext(app: Flask, app_config: dict):
    secret_nid, secret_dob = f"{CANARY}-NID", f"{CANARY}-DOB"
    secret_answer, clear_name = f"{CANARY}-HEALTH", f"{CANARY}-NAME"
    with scratch_tenant(app, "piivault") as tenant:
        with app.app_context(), tenant_context(tenant):
            person = Person(name=clear_name, national_id=secret_nid, date_of_birth=secret_dob)
            db.session.add(person)
            db.session.flush()
            db.session.add(Note(person_id=person.id, answer=secret_answer))
            db.session.commit()

        # A plain connection, no ORM, no types: what anyone with SQL access sees.
        with psycopg.connect(app_config["DATABASE_URL"]) as conn:
            rows = conn.execute(
                f"SELECT p.name, p.national_id::text, p.date_of_birth::text, n.answer::text "
                f"FROM {tenant.schema}.pii_people p JOIN {tenant.schema}.pii_notes n "
                f"ON n.person_id = p.id"
            ).fetchall()
        assert len(rows) == 1
        name, *encrypted = rows[0]
        assert name == clear_name
        for value in encrypted:
            assert value.startswith("v1:")
            assert CANARY not in value

        pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
        dump = subprocess.run(
            [pg_dump, "--schema", tenant.schema, app_config["DATABASE_URL"]],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert clear_name in dump, "the dump holds the table's data"
        for secret in (secret_nid, secret_dob, secret_answer):
            assert secret not in dump
        assert dump.count("v1:") >= 3


# --- Masking --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "masked"),
    [
        ("national_id", "123-45-6789", "****6789"),
        ("national_id", "6789", "****"),
        ("tax_id", "DE123456789", "****6789"),
        ("bank_account", "GB29 NWBK 6016 1331 9268 19", "****6819"),
        ("email", "jane.doe@example.com", "j***@example.com"),
        ("email", "no-at-sign", "****"),
        ("phone", "+44 20 7946 0958", "***958"),
        ("phone", "112", "****"),
        ("date_of_birth", "1980-05-17", "1980"),
        ("date_of_birth", date(1980, 5, 17), "1980"),
        ("health", "asthma since 2001", "****"),
        ("name", "Jane Doe", "Jane Doe"),
        ("email", None, None),
        (None, "untagged", "untagged"),
    ],
)
def test_the_masking_rules(kind: str | None, value: object, masked: object):
    assert mask(value, kind) == masked


def test_an_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown pii kind"):
        mask("x", "shoe_size")


def _user(role: str) -> User:
    return db.session.scalars(
        select(User).where(User.email == f"{role}.user@alpha.example.com")
    ).one()


def test_what_each_role_sees(app: Flask, role_users: dict, alpha_db: None):
    users = {role: _user(role) for role in ("admin", "manager", "agent", "customer")}
    seen = {role: visible("123-45-6789", "national_id", user) for role, user in users.items()}
    assert seen == {
        "admin": "123-45-6789",
        "manager": "123-45-6789",
        "agent": "****6789",
        "customer": "****6789",
    }
    assert visible("ann@example.com", "email", users["agent"]) == "a***@example.com"
    assert visible("1980-05-17", "date_of_birth", users["agent"]) == "1980"
    assert visible("Ann Smith", "name", users["agent"]) == "Ann Smith"
    # In the portal, a customer sees their own record in full.
    assert visible("123-45-6789", "national_id", users["customer"], own=True) == "123-45-6789"
    # Staff data unmasks for those who manage staff: admins, not managers.
    assert visible("+44 20 7946 0958", "phone", users["admin"], module="settings").endswith("0958")
    assert visible("+44 20 7946 0958", "phone", users["manager"], module="settings") == "***958"
    assert visible("123-45-6789", "national_id", None) == "****6789"
    with pytest.raises(ValueError, match="no unmask permission"):
        visible("x", "email", users["admin"], module="nowhere")


def test_a_row_as_a_role_sees_it(app: Flask, role_users: dict, alpha_db: None):
    row = {"id": 7, "name": "Ann", "email": "ann@example.com", "national_id": "123-45-6789"}
    table = Person.__table__
    assert pii.visible_values(table, row, _user("agent")) == {
        "id": 7,
        "name": "Ann",
        "email": "a***@example.com",
        "national_id": "****6789",
    }
    assert pii.visible_values(table, row, _user("manager")) == row
