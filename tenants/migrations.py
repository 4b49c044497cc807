"""Running the two Alembic streams: `shared` once, `tenant` in every tenant schema."""

from __future__ import annotations

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


def alembic_config(
    stream: str, connection: Connection | None = None, schema: str | None = None
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / stream))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


@cache
def _script(stream: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(stream))


def head(stream: str = "tenant") -> str:
    revision = _script(stream).get_current_head()
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


def tenant_revision(connection: Connection, schema: str) -> str | None:
    exists = connection.execute(
        text("SELECT to_regclass(:t)"), {"t": f'"{schema}".alembic_version'}
    ).scalar()
    if not exists:
        return None
    return connection.execute(text(f'SELECT version_num FROM "{schema}".alembic_version')).scalar()
