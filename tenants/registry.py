"""Reading the tenant registry. Uses plain connections, never the ORM session, so a
lookup made before the tenant is known cannot bind the request's session to none."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine, text

from core import generations
from core.tenancy import Tenant

log = logging.getLogger(__name__)

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


# --- The request path's lookups, remembered until the registry changes ----------------

# Looking a tenant up costs a pooled connection, a ping, a query and a rollback: about a
# quarter of an authenticated API GET (bench/auth.py). So each process remembers the
# tenants it found, and every write to the registry bumps a generation counter in Redis:
# a suspension, deletion or plugin change made by any process takes effect on its next
# request everywhere. A process learns of a bump without asking Redis on every request:
# Redis pushes it (core.generations.Watch, client-side-caching invalidation); when the
# push channel is down, each request reads the counter (one GET). The time limit is
# only a safety net for a bump that was lost or a write that made none.
GENERATION_NAME = "registry"
GENERATION_KEY = generations.key(GENERATION_NAME)
CACHE_SECONDS = 60.0


def changed() -> None:
    """Call after writing the registry: every process forgets what it remembers."""
    generations.changed(GENERATION_NAME)


class RecentTenants:
    """`by_slug` for host resolution, remembered until the registry changes
    (core.generations).

    Only tenants found are remembered, so a tenant created elsewhere is found at its
    first request. Without Redis nothing is remembered: every request reads the registry.
    """

    def __init__(
        self, engine_factory: Callable[[], Engine], seconds: float = CACHE_SECONDS
    ) -> None:
        self._engine_factory = engine_factory
        self._remembered: generations.Remembered[Tenant | None] = generations.Remembered(seconds)

    def by_slug(self, slug: str) -> Tenant | None:
        return self._remembered.get(
            GENERATION_NAME,
            lambda: by_slug(self._engine_factory(), slug),
            part=slug,
            keep=lambda tenant: tenant is not None,
        )
