"""Test-only job types, and helpers to run workers for the job tests.

Real worker processes import this module through POWERBUYER_JOB_MODULES, so the job
types below exist in the test process and in every worker the tests start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import rq
from flask import Flask, current_app
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from core import jobs
from core.db import db, scope_connection
from core.jobs import Job, JobContext, job_type
from core.tenancy import Tenant, current_tenant, tenant_context, tenant_key

ROOT = Path(__file__).resolve().parents[2]
PROBE_TABLE = "job_probe"
CHUNK_TABLE = "job_chunks"


# --- Job types ------------------------------------------------------------------------


@job_type("test.echo")
def echo(ctx: JobContext, **payload: Any) -> dict[str, Any]:
    return {"tenant": ctx.tenant.slug, "attempt": ctx.attempt, "payload": payload}


@job_type("test.fail")
def fail(ctx: JobContext, reason: str) -> None:
    raise ValueError(reason)


@job_type("test.flaky")
def flaky(ctx: JobContext, succeed_on: int) -> dict[str, Any]:
    if ctx.attempt < succeed_on:
        raise RuntimeError(f"flaky failure on attempt {ctx.attempt}")
    return {"succeeded_on": ctx.attempt}


@job_type("test.wait")
def wait_for_release(ctx: JobContext, timeout: float) -> dict[str, Any]:
    """Report progress, then hold until the test sets the release key."""
    ctx.progress(1, 3, "waiting for release")
    redis = current_app.extensions["redis"]
    deadline = time.monotonic() + timeout
    while not redis.exists(tenant_key("release", ctx.job_id)):
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.05)
    ctx.progress(3, 3, "released")
    return {"released": True}


@job_type("test.probe")
def probe(ctx: JobContext, other_schema: str) -> dict[str, Any]:
    """What this job can see: its tenant's probe rows and users, and whether PostgreSQL
    lets it read another tenant's schema."""
    session = ctx.session
    seen = {
        "context_tenant": current_tenant().slug if current_tenant() else None,
        "role": session.scalar(text("SELECT current_user")),
        "rows": sorted(session.scalars(text(f"SELECT key FROM {PROBE_TABLE}"))),
        "users": sorted(session.scalars(text("SELECT email FROM users"))),
        "pid": os.getpid(),
    }
    savepoint = session.begin_nested()
    try:
        session.execute(text(f"SELECT count(*) FROM {other_schema}.{PROBE_TABLE}"))
        seen["other_schema"] = "readable"
    except DBAPIError as exc:
        seen["other_schema"] = "denied" if "permission denied" in str(exc) else str(exc)
    savepoint.rollback()
    return seen


@job_type("test.chunks")
def insert_chunks(ctx: JobContext, rows: int, chunk: int, pause: float) -> dict[str, Any]:
    """Insert `rows` probe rows in chunks, each committed, then its progress recorded.

    Keys are derived from the job id, so running a chunk again inserts nothing new.
    """
    session = ctx.session
    for start in range(0, rows, chunk):
        keys = [f"{ctx.job_id}:{n}" for n in range(start, min(start + chunk, rows))]
        session.execute(
            text(
                f"INSERT INTO {CHUNK_TABLE} (key) SELECT unnest(CAST(:keys AS text[])) "
                "ON CONFLICT (key) DO NOTHING"
            ),
            {"keys": keys},
        )
        session.commit()
        ctx.progress(start + len(keys), rows, f"pid {os.getpid()}")
        time.sleep(pause)
    return {"rows": rows}


@job_type("test.lose_claim")
def lose_claim(ctx: JobContext, key: str) -> dict[str, Any]:
    """Write a row, but lose the claim before finishing (on the first attempt only),
    as when the reaper gives a job whose heartbeats stalled to another worker."""
    ctx.session.execute(text(f"INSERT INTO {CHUNK_TABLE} (key) VALUES (:k)"), {"k": key})
    if ctx.attempt == 1:
        with db.engine.begin() as conn:
            scope_connection(conn, ctx.tenant)
            conn.execute(update(Job).where(Job.id == ctx.job_id).values(status="queued"))
    return {"attempt": ctx.attempt}


def platform_probe(marker: str) -> dict[str, Any]:
    """A platform job: runs with an app context and no tenant."""
    tenant = current_tenant()
    return {"marker": marker, "tenant": tenant.slug if tenant else None, "app": current_app.name}


# --- Helpers for the tests --------------------------------------------------------------


def create_table(app: Flask, tenant: Tenant, table: str, keys: Sequence[str] = ()) -> None:
    """A table in the tenant's schema, created as the tenant's role, holding `keys`."""
    with app.app_context(), db.engine.begin() as conn:
        scope_connection(conn, tenant)
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (key text PRIMARY KEY)"))
        for key in keys:
            conn.execute(
                text(f"INSERT INTO {table} (key) VALUES (:k) ON CONFLICT DO NOTHING"), {"k": key}
            )


def count_rows(app: Flask, tenant: Tenant, table: str, prefix: str) -> int:
    with app.app_context(), db.engine.begin() as conn:
        scope_connection(conn, tenant)
        return conn.scalar(
            text(f"SELECT count(*) FROM {table} WHERE starts_with(key, :p)"), {"p": prefix}
        )


def set_job_columns(app: Flask, tenant: Tenant, job_id: uuid.UUID, **values: Any) -> None:
    """Rewrite a job row directly: to age it, or to fake a worker that claimed it and died."""
    with app.app_context(), db.engine.begin() as conn:
        scope_connection(conn, tenant)
        conn.execute(update(Job).where(Job.id == job_id).values(**values))


def enqueue_committed(
    app: Flask, tenant: Tenant, type_: str, payload: dict | None = None, **kw: Any
) -> uuid.UUID:
    """Enqueue in a fresh app context and commit (which pushes); return the job id."""
    with app.app_context(), tenant_context(tenant):
        job_id = jobs.enqueue(type_, payload, **kw).id
        db.session.commit()
        return job_id


def load_job(app: Flask, tenant: Tenant, job_id: uuid.UUID) -> Job:
    """The job row as committed right now (a fresh session each call)."""
    with app.app_context(), tenant_context(tenant):
        job = jobs.get_job(job_id)
        assert job is not None, job_id
        db.session.expunge(job)
        return job


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def queued_rq_ids(app: Flask, name: str = "default") -> list[str]:
    with app.app_context():
        return jobs.queue(name).get_job_ids()


def drain(app: Flask, *names: str, max_jobs: int | None = None) -> None:
    """Run the queued messages of `names` in this process (RQ's SimpleWorker, burst)."""
    # The worker installs its own SIGINT/SIGTERM handlers; give pytest its own back.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with app.app_context():
            queues = [jobs.queue(name) for name in names or ("default",)]
            worker = rq.SimpleWorker(queues, connection=app.extensions["redis"])
            worker.work(burst=True, max_jobs=max_jobs)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def worker_env(app_config: dict[str, Any]) -> dict[str, str]:
    """The environment that gives a spawned process the test app's configuration."""
    env = dict(os.environ)
    env.update(
        {
            "POWERBUYER_ENV": str(app_config["ENV_NAME"]),
            "POWERBUYER_INSTANCE": str(app_config["INSTANCE_PATH"]),
            "DATABASE_URL": str(app_config["DATABASE_URL"]),
            "REDIS_URL": str(app_config["REDIS_URL"]),
            "DB_ROLE_PREFIX": str(app_config["DB_ROLE_PREFIX"]),
            "APP_DB_ROLE": str(app_config["APP_DB_ROLE"]),
            "RQ_QUEUE_PREFIX": str(app_config["RQ_QUEUE_PREFIX"]),
            "SERVER_NAME": str(app_config["SERVER_NAME"]),
            "JOB_HEARTBEAT_SECONDS": str(app_config["JOB_HEARTBEAT_SECONDS"]),
            "JOB_ABANDONED_AFTER_SECONDS": str(app_config["JOB_ABANDONED_AFTER_SECONDS"]),
            "POWERBUYER_JOB_MODULES": __name__,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        }
    )
    env.pop("DATABASE_ADMIN_URL", None)
    return env


@contextmanager
def powerbuyer_process(
    app_config: dict[str, Any], log_path: Path, *args: str
) -> Iterator[subprocess.Popen]:
    """A real `powerbuyer <args>` process (worker, scheduler); killed on exit if still
    running. Its output goes to `log_path`, printed when the test fails inside."""
    command = [str(Path(sys.executable).parent / "powerbuyer"), *args]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=worker_env(app_config), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    except BaseException:
        print(f"--- {log_path} ---\n{log_path.read_text(errors='replace')[-20000:]}")
        raise
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def worker_process(
    app_config: dict[str, Any], log_path: Path, *, burst: bool
) -> AbstractContextManager[subprocess.Popen]:
    return powerbuyer_process(app_config, log_path, "worker", *(["--burst"] if burst else []))


def horse_pid(message: str | None) -> int | None:
    """The work-horse pid that `test.chunks` writes into its progress message."""
    if message and message.startswith("pid "):
        return int(message.removeprefix("pid "))
    return None
