"""Engine, session and the tenant transaction hook (ARCHITECTURE section 3).

Every transaction an ORM session begins starts with one statement that sets the
PostgreSQL role and search_path *transaction-locally*. Because both settings die with
the transaction, a pooled connection, a PgBouncer in transaction mode or a rollback
can never carry one tenant into another's work. The database, not this code, then
refuses any access to another tenant's schema: the application's login role is only a
NOINHERIT member of each tenant role and can read nothing by itself.
"""

from __future__ import annotations

from typing import Any

from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, SessionTransaction

from core.tenancy import NoTenantError, Tenant, current_tenant

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantSession(FlaskSession):
    """A session bound to at most one tenant for its whole life."""


db = SQLAlchemy(model_class=Base, session_options={"class_": TenantSession})

# One statement, both settings, both local to the transaction (`is_local` = true).
# An empty search_path when there is no tenant makes any unqualified business table
# name fail instead of resolving somewhere unexpected.
_SCOPE_SQL = text("SELECT set_config('role', :role, true), set_config('search_path', :path, true)")


def scope_connection(connection: Connection, tenant: Tenant | None) -> None:
    """Scope the connection's current transaction to `tenant` (or to no tenant)."""
    if tenant is None:
        connection.execute(_SCOPE_SQL, {"role": "none", "path": ""})
    else:
        connection.execute(_SCOPE_SQL, {"role": tenant.role, "path": tenant.schema})


@event.listens_for(TenantSession, "after_begin")
def _scope_transaction(
    session: TenantSession, transaction: SessionTransaction, connection: Connection
) -> None:
    tenant = current_tenant()
    bound = session.info.get("tenant_id", _UNBOUND)
    tenant_id = tenant.id if tenant else None
    if bound is _UNBOUND:
        session.info["tenant_id"] = tenant_id
    elif bound != tenant_id:
        raise NoTenantError(
            f"session bound to tenant {bound!r} used for tenant {tenant_id!r}; "
            "one session serves one tenant"
        )
    scope_connection(connection, tenant)


_UNBOUND: Any = object()
