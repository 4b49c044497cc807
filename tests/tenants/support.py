"""Helpers for the tenant tests: what a tenant leaves in PostgreSQL, unique slugs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import text

from core.tenancy import role_name, schema_name
from tenants import provisioning
from tenants.admin import admin_engine


def traces(app: Flask, slug: str) -> dict[str, bool]:
    """Which of the tenant's role, schema and registry row exist."""
    role = role_name(slug, app.config["DB_ROLE_PREFIX"])
    with admin_engine(app).connect() as conn:
        return {
            "role": bool(
                conn.scalar(text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": role})
            ),
            "schema": bool(
                conn.scalar(
                    text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"),
                    {"s": schema_name(slug)},
                )
            ),
            "registry": bool(
                conn.scalar(
                    text("SELECT count(*) FROM public.tenants WHERE slug = :s"), {"s": slug}
                )
            ),
        }


NOTHING = {"role": False, "schema": False, "registry": False}
EVERYTHING = {"role": True, "schema": True, "registry": True}


@pytest.fixture
def new_slug(app: Flask) -> Iterator[Callable[[str], str]]:
    """Unique slugs; whatever a test leaves under them is removed afterwards."""
    made: list[str] = []

    def make(prefix: str = "prov") -> str:
        slug = f"{prefix}-{uuid.uuid4().hex[:10]}"
        made.append(slug)
        return slug

    yield make
    engine = admin_engine(app)
    for slug in made:
        with contextlib.suppress(provisioning.TenantNotFound):
            provisioning.delete_tenant(engine, slug)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_name(slug)}" CASCADE'))
            role = role_name(slug, app.config["DB_ROLE_PREFIX"])
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        assert traces(app, slug) == NOTHING
