"""The parallel tenant migration runner and the at-head check.

Each tenant is upgraded in its own transaction in a pool of processes. A failing
tenant is rolled back alone, recorded as failed, and the run goes on. Running again
resumes: only tenants whose schema is not at head (or whose last run failed) are
migrated again.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from core.db import scope_connection
from core.tenancy import Tenant
from tenants import migrations


@dataclass(frozen=True)
class Result:
    slug: str
    revision: str | None
    error: str | None = None


_engine: Engine | None = None

_RECORD_SQL = text(
    """
    INSERT INTO public.tenant_migrations
        (tenant_id, revision, status, error, started_at, finished_at)
    VALUES (:id, :revision, :status, :error, now(), clock_timestamp())
    ON CONFLICT (tenant_id) DO UPDATE SET revision = coalesce(EXCLUDED.revision,
        public.tenant_migrations.revision), status = EXCLUDED.status, error = EXCLUDED.error,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at
    """
)


def _engine_for(admin_url: str) -> Engine:
    # One connection kept for all the tenants a process migrates: each transaction sets
    # role and search_path transaction-locally, so nothing carries from one tenant to
    # the next, and a new backend per tenant cost a third of the per-tenant time.
    return create_engine(admin_url, pool_size=1, max_overflow=0)


def _init_worker(admin_url: str) -> None:
    global _engine
    _engine = _engine_for(admin_url)


def _refresh_catalog_statistics(admin_url: str) -> None:
    """ANALYZE the catalogs Alembic's per-tenant version-table lookup plans against.

    Right after many tenants were provisioned, and before autovacuum catches up (or
    where it is off), stale pg_class statistics make that lookup scan every tenant's
    alembic_version: 3-5 ms per tenant at 1,000 tenants, 2.6x the whole run's time
    (found by bench/tenants.py). A role that may not ANALYZE them gets a warning only.
    """
    engine = create_engine(admin_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE pg_catalog.pg_class, pg_catalog.pg_namespace"))
    finally:
        engine.dispose()


def migrate_one(tenant: Tenant, engine: Engine | None = None) -> Result:
    """Upgrade one tenant in one transaction and record the outcome in `public`."""
    engine = engine or _engine
    assert engine is not None
    try:
        with engine.begin() as conn:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"tenant:{tenant.slug}"}
            )
            revision = migrations.upgrade_tenant(conn, tenant)
            scope_connection(conn, None)
            conn.execute(
                _RECORD_SQL,
                {"id": tenant.id, "revision": revision, "status": "done", "error": None},
            )
        return Result(tenant.slug, revision)
    except Exception as exc:  # one tenant's failure must not stop the others
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        with engine.begin() as conn:
            conn.execute(
                _RECORD_SQL,
                {"id": tenant.id, "revision": None, "status": "failed", "error": message},
            )
        return Result(tenant.slug, None, message)


def migrate_all(admin_url: str, tenants: list[Tenant], jobs: int = 4) -> list[Result]:
    if not tenants:
        return []
    _refresh_catalog_statistics(admin_url)
    if jobs <= 1 or len(tenants) == 1:
        engine = _engine_for(admin_url)
        try:
            return [migrate_one(t, engine) for t in tenants]
        finally:
            engine.dispose()
    # fork, not spawn: the children inherit the imported application instead of each
    # importing it again.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(tenants)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(admin_url,),
    ) as pool:
        chunk = max(1, len(tenants) // (jobs * 4))
        return list(pool.map(migrate_one, tenants, chunksize=chunk))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def schema_revisions(conn: Connection, schemas: Iterable[str]) -> dict[str, str | None]:
    """The Alembic revision of each schema (None: no version table), in two queries.

    One query finds which schemas have a version table; one UNION ALL then reads them
    all, so checking a thousand tenants costs two round trips, not a thousand.
    """
    schemas = list(schemas)
    if not schemas:
        return {}
    # to_regclass is a cache lookup per schema, whatever the catalog statistics say.
    present = conn.scalars(
        text(
            "SELECT s FROM unnest(CAST(:schemas AS text[])) AS s"
            " WHERE to_regclass(format('%I.alembic_version', s)) IS NOT NULL"
        ),
        {"schemas": schemas},
    ).all()
    revisions: dict[str, str | None] = dict.fromkeys(schemas)
    if present:
        union = " UNION ALL ".join(
            f"SELECT {_literal(s)}, version_num FROM {_identifier(s)}.alembic_version"
            for s in present
        )
        # Result objects have keys(), so dict() would treat them as mappings.
        revisions.update((schema, rev) for schema, rev in conn.execute(text(union)))
    return revisions


def last_statuses(conn: Connection) -> dict[int, str]:
    """Tenant id -> status of its last migration run."""
    rows = conn.execute(text("SELECT tenant_id, status FROM public.tenant_migrations"))
    return {tenant_id: status for tenant_id, status in rows}


def pending(engine: Engine, tenants: list[Tenant], target: str) -> list[Tenant]:
    """The tenants a run must migrate: not at `target`, or whose last run failed."""
    with engine.connect() as conn:
        revisions = schema_revisions(conn, (t.schema for t in tenants))
        statuses = last_statuses(conn)
    return [t for t in tenants if revisions[t.schema] != target or statuses.get(t.id) == "failed"]


def behind(engine: Engine, tenants: list[Tenant], target: str) -> list[tuple[str, str | None]]:
    """(slug, revision) of each tenant whose schema is not at `target`."""
    with engine.connect() as conn:
        revisions = schema_revisions(conn, (t.schema for t in tenants))
    return [(t.slug, revisions[t.schema]) for t in tenants if revisions[t.schema] != target]


@dataclass(frozen=True)
class StatusRow:
    slug: str
    name: str
    status: str
    revision: str | None
    migration: str | None
    created_at: datetime


def status_rows(engine: Engine) -> list[StatusRow]:
    """Every tenant with its schema's actual revision and its last migration status."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.id, t.slug, t.name, t.status, t.schema_name, t.created_at"
                " FROM public.tenants t ORDER BY t.slug"
            )
        ).all()
        revisions = schema_revisions(conn, (row.schema_name for row in rows))
        statuses = last_statuses(conn)
    return [
        StatusRow(
            row.slug,
            row.name,
            row.status,
            revisions[row.schema_name],
            statuses.get(row.id),
            row.created_at,
        )
        for row in rows
    ]
