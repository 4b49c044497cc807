"""Running the two Alembic streams: `shared` once, `tenant` in every tenant schema."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

import migrations as migrations_package
from core.db import scope_connection
from core.tenancy import Tenant

ROOT = Path(migrations_package.__file__).parent

# Points the tenant stream at another directory (a copy with an extra revision), so
# tests and bench/tenants.py can run a real migration without changing the real stream.
TENANT_STREAM_ENV = "POWERBUYER_TENANT_MIGRATIONS"


def script_location(stream: str) -> str:
    override = os.environ.get(TENANT_STREAM_ENV) if stream == "tenant" else None
    return str(Path(override).resolve()) if override else str(ROOT / stream)


def alembic_config(
    stream: str, connection: Connection | None = None, schema: str | None = None
) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location(stream))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


@cache
def _script(location: str) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", location)
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config)


def head(stream: str = "tenant") -> str:
    revision = _script(script_location(stream)).get_current_head()
    assert revision is not None, f"migration stream {stream} has no revisions"
    return revision


def upgrade_shared(connection: Connection, app_role: str, grants: dict[str, str]) -> None:
    """Bring `public` to head and grant the application role what it may do there."""
    connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    command.upgrade(alembic_config("shared", connection), "head")
    connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{app_role}"'))
    for table, privileges in grants.items():
        connection.execute(text(f'GRANT {privileges} ON public."{table}" TO "{app_role}"'))


def upgrade_tenant(connection: Connection, tenant: Tenant) -> str:
    """Upgrade one tenant schema to head inside the caller's transaction; returns head.

    The transaction is scoped to the tenant (its role, its search_path) first, so the
    migration creates objects the tenant role owns and cannot touch another schema.
    """
    scope_connection(connection, tenant)
    command.upgrade(alembic_config("tenant", connection, tenant.schema), "head")
    return head("tenant")
