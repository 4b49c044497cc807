"""Reading the tenant registry. Uses plain connections, never the ORM session, so a
lookup made before the tenant is known cannot bind the request's session to none."""

from __future__ import annotations

from sqlalchemy import Engine, text

from core.tenancy import Tenant

_TENANT_SQL = text(
    """
    SELECT t.id, t.slug, t.name, t.schema_name, t.role_name, t.status,
           coalesce(array_agg(p.plugin) FILTER (WHERE p.plugin IS NOT NULL), '{}') AS plugins
    FROM public.tenants t
    LEFT JOIN public.tenant_plugins p ON p.tenant_id = t.id
    WHERE {where}
    GROUP BY t.id
    ORDER BY t.slug
    """
)


def _tenant(row) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        schema=row.schema_name,
        role=row.role_name,
        status=row.status,
        enabled_plugins=frozenset(row.plugins),
    )


def _query(engine: Engine, where: str, **params: object) -> list[Tenant]:
    sql = text(_TENANT_SQL.text.replace("{where}", where))
    with engine.connect() as conn:
        return [_tenant(row) for row in conn.execute(sql, params)]


def by_slug(engine: Engine, slug: str) -> Tenant | None:
    found = _query(engine, "t.slug = :slug", slug=slug)
    return found[0] if found else None


def by_id(engine: Engine, tenant_id: int) -> Tenant | None:
    found = _query(engine, "t.id = :id", id=tenant_id)
    return found[0] if found else None


def all_tenants(engine: Engine, status: str | None = None) -> list[Tenant]:
    if status:
        return _query(engine, "t.status = :status", status=status)
    return _query(engine, "true")


class Directory:
    """The registry as the kernel sees it (jobs and plugins look tenants up here)."""

    def __init__(self, engine_factory) -> None:
        self._engine_factory = engine_factory

    def get(self, tenant_id: int) -> Tenant | None:
        return by_id(self._engine_factory(), tenant_id)

    def by_slug(self, slug: str) -> Tenant | None:
        return by_slug(self._engine_factory(), slug)

    def active(self) -> list[Tenant]:
        return all_tenants(self._engine_factory(), status="active")
