"""RQ queues, the tenant-aware job wrapper and durable job state (ARCHITECTURE section 6).

PostgreSQL holds the truth about every job (a `jobs` table in each tenant schema);
Redis only carries `(tenant_id, job_id)` to a worker. So:

- `enqueue` adds the row to the caller's transaction and pushes to Redis only after
  that transaction commits; a rollback pushes nothing.
- `run` (the function RQ calls) claims the row atomically (`queued` -> `running`), so
  a duplicate delivery or an already finished job does nothing.
- A running job beats a heartbeat; the reaper (run by the scheduler) requeues jobs
  whose heartbeat stopped and re-pushes queued jobs whose Redis message was lost.
  Delivery is therefore at-least-once, and job types must be idempotent.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rq
from flask import Flask, current_app, has_app_context, has_request_context
from redis import Redis
from redis.exceptions import LockError
from rq.exceptions import NoSuchJobError
from sqlalchemy import DateTime, Engine, Index, String, Text, event, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column, scoped_session

from core import logs, plugins
from core.db import Base, TenantSession, commit_made_durable, db, scope_connection
from core.security import authz
from core.security.permissions import validate
from core.tenancy import Tenant, platform_key, require_tenant, tenant_context, tenant_key

log = logging.getLogger(__name__)

QUEUES = ("default", "bulk", "scheduled")
# RQ kills a job that runs longer than this; the wrapper then records a failure
# (and retries it). Bulk work is chunked but may legitimately run for hours.
JOB_TIMEOUTS = {"default": 10 * 60, "bulk": 4 * 60 * 60, "scheduled": 60 * 60}
# The job this context is running, if any (core.audit attributes writes to it).
running_job: ContextVar[uuid.UUID | None] = ContextVar("powerbuyer_running_job", default=None)
# The statuses of a job's row. `queued` and `running` are "not finished yet".
QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"


class Job(Base):
    """Durable state of one job of one tenant. Redis only carries the job's id."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(20), default="default")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None] = mapped_column()
    message: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- Job types and periodic jobs ----------------------------------------------------

JobFunction = Callable[..., "dict[str, Any] | None"]
JOB_TYPES: dict[str, JobFunction] = {}
# Job type -> the permission needed to enqueue it from a request.
JOB_PERMISSIONS: dict[str, str] = {}
# Job types a plugin contributed (name -> plugin): they run only for tenants that
# enabled that plugin.
PLUGIN_JOB_TYPES: dict[str, str] = {}


class JobTypeNotEnabled(LookupError):
    """The job type belongs to a plugin the tenant has not enabled."""


@dataclass(frozen=True)
class Periodic:
    name: str
    every: float
    queue: str


PERIODIC: dict[str, Periodic] = {}


def register_job_type(name: str, fn: JobFunction, permission: str | None = None) -> None:
    """Register `fn(ctx, **payload)` as job type `name` (plugins call this via a hook).

    `permission`: what a signed-in caller needs to enqueue it (core.security.authz).
    """
    known = JOB_TYPES.get(name)
    if known is not None and _qualname(known) != _qualname(fn):
        raise ValueError(f"job type {name!r} is already registered by {_qualname(known)}")
    if permission is not None:
        validate({permission})  # a typo must fail at start-up, not deny every caller
        JOB_PERMISSIONS[name] = permission
    JOB_TYPES[name] = fn


def job_type(name: str, *, permission: str | None = None) -> Callable[[JobFunction], JobFunction]:
    """Decorator: `@job_type("policies.renew", permission="policies:update")` over
    `def renew(ctx, policy_id): ...`."""

    def register(fn: JobFunction) -> JobFunction:
        register_job_type(name, fn, permission)
        return fn

    return register


def periodic(
    name: str, *, every: float, queue: str = "scheduled"
) -> Callable[[JobFunction], JobFunction]:
    """A job type the scheduler enqueues for every active tenant once per `every` seconds.

    Runs are aligned to multiples of `every` since the epoch (every=86400: once per UTC
    day). A tenant whose previous run is still queued or running is skipped.
    """
    _check_queue(queue)
    if every <= 0:
        raise ValueError("every must be a positive number of seconds")

    def register(fn: JobFunction) -> JobFunction:
        register_job_type(name, fn)
        PERIODIC[name] = Periodic(name, float(every), queue)
        return fn

    return register


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _check_queue(name: str) -> None:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUES)}")


# --- Queues and pushing ---------------------------------------------------------------


def queue(name: str) -> rq.Queue:
    """The RQ queue `name` (one of QUEUES), named with the app's RQ_QUEUE_PREFIX."""
    return _rq_queue(name)


def _rq_queue(name: str) -> rq.Queue:
    # `enqueue` and friends take a `queue=` argument that shadows `queue()`.
    _check_queue(name)
    redis: Redis = current_app.extensions["redis"]
    return rq.Queue(
        f"{current_app.config['RQ_QUEUE_PREFIX']}:{name}",
        connection=redis,
        default_timeout=JOB_TIMEOUTS[name],
    )


def rq_job_id(tenant_id: int, job_id: uuid.UUID, attempts: int) -> str:
    """The RQ id of the message that starts attempt `attempts + 1` of a job.

    One id per attempt: a retry never overwrites the RQ record of the run that is
    still finishing, and the reaper can ask Redis whether *this* attempt is queued.
    """
    return f"t{tenant_id}_{job_id.hex}_{attempts}"


@dataclass(frozen=True)
class _Push:
    queue: rq.Queue
    tenant_id: int
    job_id: uuid.UUID
    attempts: int

    def send(self) -> None:
        """Push to Redis. A failure is logged, not raised: the row is committed, and
        the reaper re-pushes queued jobs that Redis does not know about."""
        try:
            self.queue.enqueue_call(
                func=run,
                args=(self.tenant_id, str(self.job_id)),
                job_id=rq_job_id(self.tenant_id, self.job_id, self.attempts),
                description=f"tenant {self.tenant_id} job {self.job_id}",
            )
        except Exception:
            log.exception("could not push job %s; the reaper will re-push it", self.job_id)


_PENDING = "powerbuyer.jobs.pending"


def enqueue(
    job_type: str,
    payload: dict[str, Any] | None = None,
    *,
    queue: str = "default",
    max_attempts: int = 3,
    created_by: str | None = None,
) -> Job:
    """Add a job of the current tenant to db.session; it is pushed once that commits.

    The payload is JSON: ids and values, never ORM objects.
    """
    tenant = require_tenant()
    if job_type not in JOB_TYPES:
        raise KeyError(f"unknown job type {job_type!r}")
    _check_enabled(job_type, tenant)
    permission = JOB_PERMISSIONS.get(job_type)
    if permission is not None and has_request_context():
        # A person or an API client asks: the same check as a view's. The scheduler, the
        # CLI and running jobs enqueue as the system, with no request.
        authz.authorize(permission)
    _check_queue(queue)
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    payload = dict(payload or {})
    json.dumps(payload)  # fail here, in the caller, on anything that is not plain JSON
    job = Job(
        type=job_type,
        queue=queue,
        payload=payload,
        status=QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        created_by=created_by,
    )
    db.session.add(job)
    db.session.flush()
    db.session.info.setdefault(_PENDING, []).append(_Push(_rq_queue(queue), tenant.id, job.id, 0))
    return job


@event.listens_for(TenantSession, "after_commit")
def _push_after_commit(session: Session) -> None:
    # Not durable yet (a savepoint released, or a session joined to a caller's
    # transaction): those jobs are left to the reaper, which pushes committed rows it
    # finds queued.
    if not commit_made_durable(session):
        return
    for push in session.info.pop(_PENDING, []):
        push.send()


@event.listens_for(TenantSession, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: Any) -> None:
    # The outermost transaction ended without after_commit taking the list: a
    # rollback, so those rows do not exist and must never be pushed.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def get_job(job_id: uuid.UUID | str) -> Job | None:
    """The job `job_id` of the current tenant, or None."""
    require_tenant()
    try:
        key = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    except ValueError:
        return None
    return db.session.get(Job, key)


# --- Platform (tenant-less) jobs --------------------------------------------------------


def enqueue_platform(
    func: Callable[..., Any], *args: Any, queue: str = "default", **kwargs: Any
) -> str:
    """Push `func(*args, **kwargs)` now, to run with an app context and no tenant.

    For work that belongs to no tenant yet (signup provisioning). Returns the RQ job id;
    there is no row in PostgreSQL, so such functions report progress themselves
    (for example under a `platform_key`) and must be idempotent too.
    """
    path = _qualname(func)
    if func.__qualname__ != func.__name__:
        raise ValueError(f"{path} is not a module-level function a worker can import")
    rq_job = _rq_queue(queue).enqueue_call(
        func=run_platform,
        args=(path, list(args), kwargs),
        job_id=f"p_{uuid.uuid4().hex}",
        description=f"platform {path}",
    )
    return rq_job.id


def run_platform(path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """RQ entry point of platform jobs."""
    module_name, _, name = path.rpartition(".")
    func = getattr(importlib.import_module(module_name), name)
    app = _worker_app()
    with app.app_context(), tenant_context(None):
        _own_pool()
        return func(*args, **kwargs)


# --- Running a job --------------------------------------------------------------------


@dataclass
class JobContext:
    """What a job function gets besides its payload."""

    job_id: uuid.UUID
    tenant: Tenant
    payload: dict[str, Any]
    attempt: int
    _engine: Engine = field(repr=False)

    @property
    def session(self) -> scoped_session[Session]:
        """db.session: the job's own session, scoped to its tenant."""
        return db.session

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress now, in a short transaction of its own (visible at once,
        whatever happens to the job's transaction)."""
        values: dict[str, Any] = {"progress": done}
        if total is not None:
            values["total"] = total
        if message is not None:
            values["message"] = message[:200]
        _update_claimed(self._engine, self.tenant, self.job_id, self.attempt, **values)


def _claimed(job_id: uuid.UUID, attempt: int) -> Any:
    """WHERE clause: this run still owns the job (the reaper has not given it away)."""
    return (Job.id == job_id) & (Job.status == RUNNING) & (Job.attempts == attempt)


def _update_claimed(
    engine: Engine, tenant: Tenant, job_id: uuid.UUID, attempt: int, **values: Any
) -> bool:
    with engine.begin() as conn:
        scope_connection(conn, tenant)
        updated = conn.execute(update(Job).where(_claimed(job_id, attempt)).values(**values))
    return updated.rowcount == 1


class _Heartbeat(threading.Thread):
    """Stamps heartbeat_at every few seconds on its own connection while the job runs."""

    def __init__(
        self, engine: Engine, tenant: Tenant, job_id: uuid.UUID, attempt: int, every: float
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self._args = (engine, tenant, job_id, attempt)
        self._every = every
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._every):
            try:
                _update_claimed(*self._args, heartbeat_at=func.now())
            except Exception:
                log.warning("heartbeat of job %s failed", self._args[2], exc_info=True)

    def stop(self) -> None:
        self._halt.set()
        self.join()


_lazy_app: Flask | None = None
_pool_pid = os.getpid()


def _worker_app() -> Flask:
    """The app jobs run in: the current one (the `powerbuyer worker` command's, which
    forked work-horses inherit), else one app built once for this process."""
    global _lazy_app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _lazy_app is None:
        from core.app import create_app

        _lazy_app = create_app()
    return _lazy_app


def _own_pool() -> None:
    # A work-horse is a fork of the worker: connections inherited from the parent's
    # pool must not be shared with it, so the child starts its own pool.
    global _pool_pid
    if os.getpid() != _pool_pid:
        db.engine.dispose(close=False)
        _pool_pid = os.getpid()


def run(tenant_id: int, job_id: str) -> str:
    """RQ entry point: run job `job_id` of tenant `tenant_id`; returns its final status."""
    app = _worker_app()
    with app.app_context():
        _own_pool()
        tenant = app.extensions["powerbuyer.tenants"].get(tenant_id)
        if tenant is None:
            log.warning("job %s: tenant %s no longer exists", job_id, tenant_id)
            return "no-tenant"
        token = logs.request_id.set(f"job:{job_id}")
        job_token = running_job.set(uuid.UUID(job_id))
        try:
            with tenant_context(tenant):
                return _execute(app, tenant, uuid.UUID(job_id))
        finally:
            running_job.reset(job_token)
            logs.request_id.reset(token)


def _execute(app: Flask, tenant: Tenant, job_id: uuid.UUID) -> str:
    engine = db.engine
    with engine.begin() as conn:
        scope_connection(conn, tenant)
        claim = conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == QUEUED)
            .values(
                status=RUNNING,
                attempts=Job.attempts + 1,
                started_at=func.now(),
                heartbeat_at=func.now(),
            )
            .returning(Job.type, Job.payload, Job.attempts, Job.max_attempts, Job.queue)
        ).one_or_none()
        if claim is None:
            # Finished, failed, running elsewhere, or never committed: nothing to do.
            status = conn.scalar(select(Job.status).where(Job.id == job_id))
            log.info("job %s not run: its status is %s", job_id, status or "missing")
            return status or "missing"

    try:
        _check_enabled(claim.type, tenant)
    except JobTypeNotEnabled as exc:
        # Retrying cannot help until an admin enables the plugin: fail it now.
        _update_claimed(
            engine,
            tenant,
            job_id,
            claim.attempts,
            status=FAILED,
            error=str(exc),
            finished_at=func.clock_timestamp(),
        )
        return FAILED

    ctx = JobContext(job_id, tenant, dict(claim.payload), claim.attempts, engine)
    heartbeat = _Heartbeat(
        engine, tenant, job_id, claim.attempts, app.config["JOB_HEARTBEAT_SECONDS"]
    )
    heartbeat.start()
    try:
        result = JOB_TYPES[claim.type](ctx, **claim.payload)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"job type {claim.type!r} returned {type(result).__name__}, not dict")
        finished = db.session.execute(
            update(Job)
            .where(_claimed(job_id, claim.attempts))
            .values(status=FINISHED, result=result, error=None, finished_at=func.clock_timestamp())
        )
        if finished.rowcount != 1:
            db.session.rollback()
            log.warning("job %s lost its claim (declared abandoned); result discarded", job_id)
            return "lost"
        db.session.commit()
        return FINISHED
    except Exception as exc:
        db.session.rollback()
        log.exception("job %s (%s) attempt %s failed", job_id, claim.type, claim.attempts)
        return _record_failure(engine, tenant, job_id, claim, exc)
    finally:
        heartbeat.stop()


def _record_failure(
    engine: Engine, tenant: Tenant, job_id: uuid.UUID, claim: Any, exc: Exception
) -> str:
    error = "".join(traceback.format_exception_only(exc)).strip()[:4000]
    if claim.attempts < claim.max_attempts:
        message = f"Attempt {claim.attempts} of {claim.max_attempts} failed; retrying"
        if _update_claimed(
            engine, tenant, job_id, claim.attempts, status=QUEUED, error=error, message=message
        ):
            _Push(queue(claim.queue), tenant.id, job_id, claim.attempts).send()
        return QUEUED
    _update_claimed(
        engine,
        tenant,
        job_id,
        claim.attempts,
        status=FAILED,
        error=error,
        finished_at=func.clock_timestamp(),
    )
    return FAILED


# --- Reaper and scheduler -------------------------------------------------------------


@dataclass(frozen=True)
class Reaped:
    tenant_id: int
    job_id: uuid.UUID
    action: str  # "requeued" | "failed" (abandoned) | "repushed" (Redis lost it)


@dataclass(frozen=True)
class Tick:
    reaped: list[Reaped]
    enqueued: list[tuple[int, uuid.UUID, str]]  # (tenant id, job id, job type)


# RQ statuses meaning "this message will still be delivered".
_WAITING = {rq.job.JobStatus.QUEUED, rq.job.JobStatus.DEFERRED, rq.job.JobStatus.SCHEDULED}


def _waiting_in_rq(redis: Redis, rq_id: str) -> bool:
    try:
        return rq.job.Job.fetch(rq_id, connection=redis).get_status(refresh=False) in _WAITING
    except NoSuchJobError:
        return False


def reap() -> list[Reaped]:
    """Requeue (or fail) abandoned jobs and re-push queued jobs Redis has lost, in every
    active tenant. Needs an app context."""
    cutoff = timedelta(seconds=current_app.config["JOB_ABANDONED_AFTER_SECONDS"])
    reaped: list[Reaped] = []
    for tenant in current_app.extensions["powerbuyer.tenants"].active():
        reaped.extend(_reap_tenant(db.engine, tenant, cutoff))
    return reaped


def _reap_tenant(engine: Engine, tenant: Tenant, cutoff: timedelta) -> list[Reaped]:
    redis: Redis = current_app.extensions["redis"]
    reaped: list[Reaped] = []
    pushes: list[_Push] = []
    with engine.begin() as conn:
        scope_connection(conn, tenant)
        abandoned = conn.execute(
            select(Job.id, Job.attempts, Job.max_attempts, Job.queue)
            .where(
                Job.status == RUNNING,
                func.coalesce(Job.heartbeat_at, Job.started_at) < func.now() - cutoff,
            )
            .with_for_update(skip_locked=True)
        ).all()
        for row in abandoned:
            note = (
                f"abandoned: no heartbeat for {cutoff.total_seconds():g}s "
                f"during attempt {row.attempts}"
            )
            if row.attempts >= row.max_attempts:
                values = {"status": FAILED, "error": note, "finished_at": func.now()}
                reaped.append(Reaped(tenant.id, row.id, "failed"))
            else:
                values = {"status": QUEUED, "message": f"Requeued ({note})"}
                reaped.append(Reaped(tenant.id, row.id, "requeued"))
                pushes.append(_Push(queue(row.queue), tenant.id, row.id, row.attempts))
            conn.execute(update(Job).where(Job.id == row.id).values(**values))
        requeued = {push.job_id for push in pushes}
        stale_queued = conn.execute(
            select(Job.id, Job.attempts, Job.queue).where(
                Job.status == QUEUED,
                func.coalesce(Job.heartbeat_at, Job.created_at) < func.now() - cutoff,
            )
        ).all()
    for row in stale_queued:
        if row.id in requeued or _waiting_in_rq(redis, rq_job_id(tenant.id, row.id, row.attempts)):
            continue
        reaped.append(Reaped(tenant.id, row.id, "repushed"))
        pushes.append(_Push(queue(row.queue), tenant.id, row.id, row.attempts))
    for push in pushes:
        push.send()
    return reaped


def scheduler_tick(now: float | None = None) -> Tick:
    """One scheduler pass: the reaper, then every periodic job that is due.

    Needs an app context. A Redis lock makes concurrent schedulers take turns.
    """
    redis: Redis = current_app.extensions["redis"]
    lock = redis.lock(platform_key("scheduler", "tick"), timeout=300, blocking=False)
    if not lock.acquire():
        return Tick([], [])
    try:
        return Tick(reap(), _enqueue_periodic(time.time() if now is None else now))
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("scheduler tick outlived its lock")


def _enqueue_periodic(now: float) -> list[tuple[int, uuid.UUID, str]]:
    if not PERIODIC:
        return []
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    redis: Redis = app.extensions["redis"]
    enqueued: list[tuple[int, uuid.UUID, str]] = []
    for tenant in app.extensions["powerbuyer.tenants"].active():
        # A fresh app context per tenant: one session serves one tenant.
        with app.app_context(), tenant_context(tenant):
            for spec in PERIODIC.values():
                slot = int(now // spec.every)
                key = tenant_key("periodic", spec.name)
                last = redis.get(key)
                if last is not None and int(last) >= slot:
                    continue
                busy = db.session.scalar(
                    select(Job.id)
                    .where(Job.type == spec.name, Job.status.in_((QUEUED, RUNNING)))
                    .limit(1)
                )
                if busy is None:
                    job = enqueue(spec.name, queue=spec.queue, created_by="scheduler")
                    db.session.commit()
                    enqueued.append((tenant.id, job.id, spec.name))
                redis.set(key, slot)
    return enqueued


def init_app(app: Flask) -> None:
    from core.worker import scheduler_command, worker_command

    # Modules whose import registers job types (tests, tools); plugins use their hook.
    for name in filter(None, (m.strip() for m in app.config.get("JOB_MODULES", "").split(","))):
        importlib.import_module(name)
    _register_plugin_job_types(app)
    app.cli.add_command(worker_command)
    app.cli.add_command(scheduler_command)


def _register_plugin_job_types(app: Flask) -> None:
    host = plugins.manager(app)
    for result in host.results("powerbuyer_job_types", tenant=None):
        for name, fn in result.value.items():
            try:
                register_job_type(name, fn)
            except ValueError as exc:
                if host.strict:
                    raise plugins.PluginError(f"plugin {result.plugin}: {exc}") from exc
                log.error("plugin %s: job type not registered: %s", result.plugin, exc)
                continue
            PLUGIN_JOB_TYPES[name] = result.plugin


def _check_enabled(job_type: str, tenant: Tenant) -> None:
    owner = PLUGIN_JOB_TYPES.get(job_type)
    if owner is not None and not plugins.manager().enabled_for(owner, tenant):
        raise JobTypeNotEnabled(
            f"job type {job_type!r} belongs to plugin {owner!r}, which this tenant has not enabled"
        )
