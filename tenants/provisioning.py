"""Creating, suspending and deleting tenants.

Provisioning is one transaction on the privileged connection: role, schema, tables at
head, seed roles, admin user and the registry row either all exist afterwards or none
do (PostgreSQL's CREATE ROLE and CREATE SCHEMA are transactional).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from core.db import scope_connection
from core.security.models import Role, User
from core.security.permissions import DEFAULT_ROLES, ROLE_DESCRIPTIONS
from core.tenancy import Tenant, role_name, schema_name
from tenants import migrations, registry
from tenants.models import TenantMigration, TenantRecord
from tenants.names import validate_slug

Progress = Callable[[int, str], None]


class TenantExists(ValueError):
    """A tenant with this slug already exists."""


class TenantNotFound(LookupError):
    """No tenant has this slug."""


@dataclass(frozen=True)
class NewTenant:
    slug: str
    name: str
    admin_email: str
    admin_password_hash: str


def _quote(name: str) -> str:
    # Names come from validate_slug / role_name and match [a-z0-9_]; quoting is belt
    # and braces, never the validation.
    return '"' + name.replace('"', '""') + '"'


def _no_progress(percent: int, message: str) -> None:
    pass


def create_tenant(
    engine: Engine,
    new: NewTenant,
    *,
    app_role: str,
    role_prefix: str = "",
    progress: Progress = _no_progress,
) -> Tenant:
    slug = validate_slug(new.slug)
    if not new.name.strip():
        raise ValueError("a name is required")
    schema, role = schema_name(slug), role_name(slug, role_prefix)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"tenant:{slug}"})
        if conn.scalar(select(TenantRecord.id).where(TenantRecord.slug == slug)):
            raise TenantExists(f"a tenant with slug {slug!r} already exists")
        if conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
            raise TenantExists(f"database role {role!r} already exists; refusing to reuse it")
        progress(10, "Creating the database role")
        conn.execute(text(f"CREATE ROLE {_quote(role)} NOLOGIN"))
        conn.execute(text(f"GRANT {_quote(role)} TO {_quote(app_role)}"))
        if not conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")):
            # A CREATEROLE (not superuser) admin must be a member to create the schema
            # for the role and to SET ROLE to it while migrating.
            conn.execute(text(f"GRANT {_quote(role)} TO current_user"))
        conn.execute(text(f"CREATE SCHEMA {_quote(schema)} AUTHORIZATION {_quote(role)}"))
        record = TenantRecord(slug=slug, name=new.name.strip(), schema_name=schema, role_name=role)
        with Session(bind=conn) as session:
            session.add(record)
            session.flush()
            tenant = Tenant(id=record.id, slug=slug, name=record.name, schema=schema, role=role)
            progress(40, "Creating tables")
            revision = migrations.upgrade_tenant(conn, tenant)
            progress(70, "Creating roles and the admin user")
            _seed(session, new)
            session.flush()
            scope_connection(conn, None)
            session.add(TenantMigration(tenant_id=record.id, revision=revision, status="done"))
            session.flush()
    progress(100, "Ready")
    return tenant


def _seed(session: Session, new: NewTenant) -> None:
    roles = {
        name: Role(name=name, description=ROLE_DESCRIPTIONS[name], permissions=sorted(grants))
        for name, grants in DEFAULT_ROLES.items()
    }
    session.add_all(roles.values())
    admin = User(
        email=new.admin_email.strip().lower(),
        password=new.admin_password_hash,
        active=True,
        fs_uniquifier=uuid.uuid4().hex,
        roles=[roles["admin"]],
    )
    session.add(admin)


def set_status(engine: Engine, slug: str, status: str) -> None:
    with engine.begin() as conn:
        updated = conn.execute(
            text("UPDATE public.tenants SET status = :s, updated_at = now() WHERE slug = :slug"),
            {"s": status, "slug": slug},
        ).rowcount
    registry.changed()
    if not updated:
        raise TenantNotFound(f"no tenant with slug {slug!r}")


def delete_tenant(engine: Engine, slug: str) -> None:
    """Drop the schema, the role and the registry row, in one transaction."""
    with engine.begin() as conn:
        row = conn.execute(
            select(TenantRecord.schema_name, TenantRecord.role_name).where(
                TenantRecord.slug == slug
            )
        ).first()
        if row is None:
            raise TenantNotFound(f"no tenant with slug {slug!r}")
        conn.execute(text(f"DROP SCHEMA IF EXISTS {_quote(row.schema_name)} CASCADE"))
        # A role already gone (dropped by hand) must not make the tenant undeletable.
        if conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": row.role_name}):
            conn.execute(text(f"DROP OWNED BY {_quote(row.role_name)}"))
            conn.execute(text(f"DROP ROLE {_quote(row.role_name)}"))
        conn.execute(text("DELETE FROM public.tenants WHERE slug = :slug"), {"slug": slug})
    registry.changed()
