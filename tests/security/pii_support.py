"""Test-only tables holding personal data, and tenants to put them in.

No business table holds personal data yet (customers come later), so the framework is
proven on these: declared on a MetaData of their own (never Base.metadata, so Alembic
and the coverage meta-test ignore them) and created in a tenant schema as the tenant's
role, inside a rolled-back test transaction or in a scratch tenant deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from flask import Flask
from sqlalchemy import DateTime, ForeignKey, MetaData, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core import gdpr
from core.db import NAMING_CONVENTION, db, scope_connection
from core.gdpr import PersonRef, Registry
from core.security.pii import EncryptedString, blind_index, blind_match, pii
from core.tenancy import Tenant
from tenants import provisioning
from tenants.admin import admin_engine
from tests.conftest import make_tenant

CANARY = "CANARY-4711-PLAINTEXT"


class ScratchBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Person(ScratchBase):
    __tablename__ = "pii_people"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), info=pii("contact", kind="name"))
    email: Mapped[str | None] = mapped_column(String(255), info=pii("contact", kind="email"))
    national_id: Mapped[str | None] = mapped_column(
        EncryptedString(), info=pii("sensitive", kind="national_id")
    )
    national_id_index: Mapped[str | None] = blind_index("national_id")
    date_of_birth: Mapped[str | None] = mapped_column(
        EncryptedString(), info=pii("sensitive", kind="date_of_birth")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Note(ScratchBase):
    """Health answers about a person: nothing here must be kept after erasure."""

    __tablename__ = "pii_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("pii_people.id"))
    answer: Mapped[str] = mapped_column(EncryptedString(), info=pii("sensitive", kind="health"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def _people(ref: PersonRef):
    if ref.email:
        return func.lower(Person.email) == ref.email.lower()
    if ref.get("national_id"):
        return blind_match(Person.national_id, str(ref.get("national_id")))
    return None


def _notes(ref: PersonRef):
    people = _people(ref)
    return None if people is None else Note.person_id.in_(select(Person.id).where(people))


def make_registry() -> Registry:
    """The application's registry (users) plus the test tables."""
    registry = Registry(e for e in gdpr.registry.entries() if e.name == "users")
    registry.register(Person, subject=_people, erase="pseudonymise", age=Person.created_at)
    registry.register(Note, subject=_notes, erase="shred", age=Note.created_at)
    return registry


def create_tables() -> None:
    """Create the test tables in the current tenant's schema, in db.session's transaction
    (scoped to the tenant's role, which therefore owns them)."""
    ScratchBase.metadata.create_all(db.session.connection())


@contextmanager
def scratch_tenant(app: Flask, prefix: str) -> Iterator[Tenant]:
    """A committed tenant with the test tables, deleted (schema and role) afterwards."""
    tenant = make_tenant(app, f"{prefix}-{uuid.uuid4().hex[:8]}")
    try:
        with app.app_context(), db.engine.begin() as conn:
            scope_connection(conn, tenant)
            ScratchBase.metadata.create_all(conn)
        yield tenant
    finally:
        provisioning.delete_tenant(admin_engine(app), tenant.slug)
