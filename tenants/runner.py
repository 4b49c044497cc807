"""The parallel tenant migration runner and the at-head check.

Each tenant is upgraded in its own transaction in a pool of processes. A failing
tenant is rolled back alone, recorded as failed, and the run goes on; running again
resumes, because schemas already at head are a no-op.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, text
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


def _init_worker(admin_url: str) -> None:
    global _engine
    _engine = create_engine(admin_url, poolclass=NullPool)


def migrate_one(tenant: Tenant, engine: Engine | None = None) -> Result:
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
    if jobs <= 1 or len(tenants) == 1:
        engine = create_engine(admin_url, poolclass=NullPool)
        try:
            return [migrate_one(t, engine) for t in tenants]
        finally:
            engine.dispose()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_init_worker, initargs=(admin_url,)
    ) as pool:
        chunk = max(1, len(tenants) // (jobs * 4))
        return list(pool.map(migrate_one, tenants, chunksize=chunk))


def behind(engine: Engine, target: str) -> list[tuple[str, str | None]]:
    """Tenants whose schema is not at `target`, read from every schema in one query."""
    with engine.connect() as conn:
        tenants = conn.execute(
            text("SELECT slug, schema_name FROM public.tenants ORDER BY slug")
        ).all()
        if not tenants:
            return []
        present = {
            row[0]
            for row in conn.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables"
                    " WHERE table_name = 'alembic_version'"
                )
            )
        }
        parts, missing = [], []
        for slug, schema in tenants:
            if schema in present:
                quoted = schema.replace('"', '""')
                parts.append(
                    f"SELECT '{slug}' AS slug,"
                    f' (SELECT max(version_num) FROM "{quoted}".alembic_version) AS rev'
                )
            else:
                missing.append((slug, None))
        rows = conn.execute(text(" UNION ALL ".join(parts))).all() if parts else []
    return missing + [(slug, rev) for slug, rev in rows if rev != target]


@dataclass(frozen=True)
class StatusRow:
    slug: str
    name: str
    status: str
    revision: str | None
    created_at: object


def status_rows(engine: Engine) -> list[StatusRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
            SELECT t.slug, t.name, t.status, m.revision, t.created_at
            FROM public.tenants t LEFT JOIN public.tenant_migrations m ON m.tenant_id = t.id
            ORDER BY t.slug
            """
            )
        ).all()
    return [StatusRow(*row) for row in rows]
