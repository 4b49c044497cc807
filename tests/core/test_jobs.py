"""Jobs: enqueue after commit, the tenant-aware wrapper, failures and retries, progress,
the reaper, the scheduler, and isolation in one worker process (issue 2, test f).

Everything runs against real PostgreSQL and Redis; "worker" means RQ's SimpleWorker in
this process, or a real `powerbuyer worker` process where the process matters.
"""

from __future__ import annotations

import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import rq
from flask import Flask
from sqlalchemy import func, select

from core import jobs
from core.db import db
from core.tenancy import NoTenantError, Tenant, tenant_context, tenant_key
from tests.core import jobs_support as support


def _rq_job(app: Flask, rq_id: str) -> rq.job.Job:
    return rq.job.Job.fetch(rq_id, connection=app.extensions["redis"])


def test_a_job_is_pushed_only_when_its_transaction_commits(app: Flask, alpha: Tenant):
    with app.app_context(), tenant_context(alpha):
        rolled_back = jobs.enqueue("test.echo", {"n": 1}).id
        rolled_back_rq_id = jobs.rq_job_id(alpha.id, rolled_back, 0)
        db.session.rollback()

        committed = jobs.enqueue("test.echo", {"n": 2}).id
        rq_id = jobs.rq_job_id(alpha.id, committed, 0)
        assert rq_id not in support.queued_rq_ids(app), "pushed before the commit"
        db.session.commit()

    queued = support.queued_rq_ids(app)
    assert rolled_back_rq_id not in queued
    assert rq_id in queued
    message = _rq_job(app, rq_id)
    assert message.func_name == "core.jobs.run"
    # The message carries the tenant and the job's id, nothing else.
    assert tuple(message.args) == (alpha.id, str(committed))

    support.drain(app)
    job = support.load_job(app, alpha, committed)
    assert (job.status, job.attempts, job.error) == ("finished", 1, None)
    assert job.result == {"tenant": "alpha", "attempt": 1, "payload": {"n": 2}}
    assert job.started_at <= job.finished_at
    with app.app_context(), tenant_context(alpha):
        assert jobs.get_job(rolled_back) is None


def test_a_commit_inside_an_outer_transaction_pushes_nothing(
    app: Flask, alpha: Tenant, alpha_db: None
):
    # The session's commit only releases a savepoint of the test's transaction, which
    # is rolled back: the row never becomes durable, so it must not reach Redis.
    job = jobs.enqueue("test.echo")
    db.session.commit()
    assert jobs.rq_job_id(alpha.id, job.id, 0) not in support.queued_rq_ids(app)


def test_enqueue_refuses_what_it_cannot_run(app: Flask, alpha: Tenant):
    with app.app_context():
        with pytest.raises(NoTenantError):
            jobs.enqueue("test.echo")
        with tenant_context(alpha):
            with pytest.raises(KeyError, match="unknown job type"):
                jobs.enqueue("test.no-such-type")
            with pytest.raises(ValueError, match="unknown queue"):
                jobs.enqueue("test.echo", queue="urgent")
            with pytest.raises(TypeError):
                jobs.enqueue("test.echo", {"tenant": alpha})  # an object, not an id
            db.session.rollback()


def test_a_failure_is_recorded_with_its_error(app: Flask, alpha: Tenant):
    job_id = support.enqueue_committed(
        app, alpha, "test.fail", {"reason": "no rating table"}, max_attempts=1
    )
    support.drain(app)
    job = support.load_job(app, alpha, job_id)
    assert (job.status, job.attempts, job.result) == ("failed", 1, None)
    assert job.error == "ValueError: no rating table"
    assert job.finished_at is not None
    assert jobs.rq_job_id(alpha.id, job_id, 1) not in support.queued_rq_ids(app)


def test_a_failed_attempt_is_retried_until_it_succeeds(app: Flask, alpha: Tenant):
    job_id = support.enqueue_committed(app, alpha, "test.flaky", {"succeed_on": 2}, max_attempts=3)
    support.drain(app, max_jobs=1)
    between = support.load_job(app, alpha, job_id)
    assert (between.status, between.attempts) == ("queued", 1)
    assert between.error == "RuntimeError: flaky failure on attempt 1"
    assert jobs.rq_job_id(alpha.id, job_id, 1) in support.queued_rq_ids(app)

    support.drain(app)
    job = support.load_job(app, alpha, job_id)
    assert (job.status, job.attempts, job.error) == ("finished", 2, None)
    assert job.result == {"succeeded_on": 2}


def test_retries_stop_at_max_attempts(app: Flask, alpha: Tenant):
    job_id = support.enqueue_committed(app, alpha, "test.flaky", {"succeed_on": 99}, max_attempts=2)
    support.drain(app)
    job = support.load_job(app, alpha, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error == "RuntimeError: flaky failure on attempt 2"


def test_a_finished_job_is_never_run_again(app: Flask, alpha: Tenant):
    job_id = support.enqueue_committed(app, alpha, "test.echo")
    support.drain(app)
    first = support.load_job(app, alpha, job_id)
    assert first.status == "finished"

    # A duplicate delivery (the reaper re-pushing, RQ redelivering) finds it finished.
    with app.app_context():
        assert jobs.run(alpha.id, str(job_id)) == "finished"
    again = support.load_job(app, alpha, job_id)
    assert (again.attempts, again.finished_at) == (1, first.finished_at)


def test_a_run_that_lost_its_claim_cannot_finish_the_job(app: Flask, alpha: Tenant):
    support.create_table(app, alpha, support.CHUNK_TABLE)
    key = f"fenced-{uuid.uuid4()}"
    job_id = support.enqueue_committed(app, alpha, "test.lose_claim", {"key": key})
    with app.app_context():
        assert jobs.run(alpha.id, str(job_id)) == "lost"
    # Its result and its writes are discarded; the job waits for its next attempt.
    stale = support.load_job(app, alpha, job_id)
    assert (stale.status, stale.result) == ("queued", None)
    assert support.count_rows(app, alpha, support.CHUNK_TABLE, key) == 0

    support.drain(app)
    job = support.load_job(app, alpha, job_id)
    assert (job.status, job.attempts, job.result) == ("finished", 2, {"attempt": 2})
    assert support.count_rows(app, alpha, support.CHUNK_TABLE, key) == 1


def test_progress_and_heartbeats_are_visible_while_a_job_runs(
    app: Flask, app_config: dict, alpha: Tenant, tmp_path: Path
):
    job_id = support.enqueue_committed(app, alpha, "test.wait", {"timeout": 60})

    def waiting() -> jobs.Job | None:
        job = support.load_job(app, alpha, job_id)
        return job if job.status == "running" and job.progress == 1 else None

    with support.worker_process(app_config, tmp_path / "worker.log", burst=True) as worker:
        running = support.wait_for(waiting, 60, "the job to report progress")
        assert (running.total, running.message) == (3, "waiting for release")
        support.wait_for(
            lambda: support.load_job(app, alpha, job_id).heartbeat_at > running.heartbeat_at,
            10,
            "a heartbeat",
        )
        with app.app_context(), tenant_context(alpha):
            app.extensions["redis"].set(tenant_key("release", job_id), 1, ex=60)
        assert worker.wait(timeout=60) == 0

    job = support.load_job(app, alpha, job_id)
    assert (job.status, job.progress, job.total, job.message) == ("finished", 3, 3, "released")
    assert job.result == {"released": True}


def test_one_worker_process_runs_each_job_in_its_own_tenant(
    app: Flask, app_config: dict, alpha: Tenant, beta: Tenant, tmp_path: Path
):
    """Isolation test f: one worker process, tenant alpha's job then beta's."""
    support.create_table(app, alpha, support.PROBE_TABLE, ["alpha-1", "alpha-2"])
    support.create_table(app, beta, support.PROBE_TABLE, ["beta-1"])
    alpha_job = support.enqueue_committed(app, alpha, "test.probe", {"other_schema": beta.schema})
    beta_job = support.enqueue_committed(app, beta, "test.probe", {"other_schema": alpha.schema})
    with support.worker_process(app_config, tmp_path / "worker.log", burst=True) as worker:
        assert worker.wait(timeout=60) == 0

    seen_by_alpha = support.load_job(app, alpha, alpha_job)
    seen_by_beta = support.load_job(app, beta, beta_job)
    assert seen_by_alpha.status == seen_by_beta.status == "finished"
    assert seen_by_alpha.started_at < seen_by_beta.started_at

    for job, tenant, rows, other in (
        (seen_by_alpha, alpha, ["alpha-1", "alpha-2"], "beta"),
        (seen_by_beta, beta, ["beta-1"], "alpha"),
    ):
        seen = job.result
        assert seen["context_tenant"] == tenant.slug
        assert seen["role"] == tenant.role
        assert seen["rows"] == rows
        assert f"admin@{tenant.slug}.example.com" in seen["users"]
        assert not [email for email in seen["users"] if email.endswith(f"@{other}.example.com")]
        assert seen["other_schema"] == "denied"

    # Both ran under the same worker (each in a work-horse forked from it).
    worker_names = {
        _rq_job(app, jobs.rq_job_id(t.id, j, 0)).worker_name
        for t, j in ((alpha, alpha_job), (beta, beta_job))
    }
    assert len(worker_names) == 1 and None not in worker_names


def test_the_reaper_repushes_a_job_redis_lost(app: Flask, alpha: Tenant):
    job_id = support.enqueue_committed(app, alpha, "test.echo", {"lost": True})
    rq_id = jobs.rq_job_id(alpha.id, job_id, 0)
    with app.app_context():
        jobs.queue("default").remove(rq_id)
        _rq_job(app, rq_id).delete()
    assert rq_id not in support.queued_rq_ids(app)

    with app.app_context():
        assert jobs.Reaped(alpha.id, job_id, "repushed") not in jobs.scheduler_tick().reaped
    # Queued for longer than JOB_ABANDONED_AFTER_SECONDS (aged rather than waited for).
    support.set_job_columns(app, alpha, job_id, created_at=func.now() - timedelta(hours=1))
    with app.app_context():
        assert jobs.Reaped(alpha.id, job_id, "repushed") in jobs.scheduler_tick().reaped
        # Now it is waiting in Redis, so the next tick leaves it alone.
        assert jobs.Reaped(alpha.id, job_id, "repushed") not in jobs.scheduler_tick().reaped
    assert rq_id in support.queued_rq_ids(app)

    support.drain(app)
    job = support.load_job(app, alpha, job_id)
    assert (job.status, job.attempts) == ("finished", 1)


def test_the_reaper_fails_an_abandoned_job_with_no_attempts_left(app: Flask, alpha: Tenant):
    job_id = support.enqueue_committed(app, alpha, "test.echo", max_attempts=1)
    # A worker claimed it and died an hour ago.
    an_hour_ago = func.now() - timedelta(hours=1)
    support.set_job_columns(
        app,
        alpha,
        job_id,
        status="running",
        attempts=1,
        started_at=an_hour_ago,
        heartbeat_at=an_hour_ago,
    )
    with app.app_context():
        assert jobs.Reaped(alpha.id, job_id, "failed") in jobs.scheduler_tick().reaped
    job = support.load_job(app, alpha, job_id)
    assert job.status == "failed"
    assert job.error.startswith("abandoned: no heartbeat")
    support.drain(app)  # the original message finds it failed and does nothing
    assert support.load_job(app, alpha, job_id).attempts == 1


def test_the_scheduler_process_reaps_and_stops_on_sigterm(
    app: Flask, app_config: dict, alpha: Tenant, tmp_path: Path
):
    job_id = support.enqueue_committed(app, alpha, "test.echo", max_attempts=1)
    an_hour_ago = func.now() - timedelta(hours=1)
    support.set_job_columns(
        app, alpha, job_id, status="running", attempts=1, heartbeat_at=an_hour_ago
    )
    log = tmp_path / "scheduler.log"
    with support.powerbuyer_process(app_config, log, "scheduler", "--interval", "0.2") as process:
        support.wait_for(
            lambda: support.load_job(app, alpha, job_id).status == "failed", 30, "the reaper"
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert "ticking every 0.2s" in log.read_text()


def test_periodic_jobs_run_once_per_period_for_every_tenant(
    app: Flask, alpha: Tenant, beta: Tenant, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(jobs, "PERIODIC", {})
    monkeypatch.setattr(jobs, "JOB_TYPES", dict(jobs.JOB_TYPES))
    jobs.periodic("test.hourly", every=3600)(support.echo)
    # A period far from now, so earlier real-time ticks cannot have claimed it.
    start = (time.time() // 3600 + 1000) * 3600

    def tick(at: float) -> set[int]:
        with app.app_context():
            enqueued = jobs.scheduler_tick(now=at).enqueued
        return {tenant_id for tenant_id, _, name in enqueued if name == "test.hourly"}

    assert {alpha.id, beta.id} <= tick(start)
    assert tick(start + 1800) == set(), "enqueued twice in one period"
    # Next period, but the previous run has not been done yet: no pile-up.
    assert tick(start + 3600) == set()
    support.drain(app, "scheduled")
    assert {alpha.id, beta.id} <= tick(start + 7200)
    support.drain(app, "scheduled")

    with app.app_context(), tenant_context(alpha):
        runs = db.session.scalars(select(jobs.Job).where(jobs.Job.type == "test.hourly")).all()
        assert len(runs) == 2
        assert {(run.status, run.created_by, run.queue) for run in runs} == {
            ("finished", "scheduler", "scheduled")
        }


def test_a_platform_job_runs_with_no_tenant(app: Flask, alpha: Tenant):
    with app.app_context(), tenant_context(alpha):
        rq_id = jobs.enqueue_platform(support.platform_probe, "signup-42")
    support.drain(app)
    assert _rq_job(app, rq_id).return_value() == {
        "marker": "signup-42",
        "tenant": None,
        "app": "powerbuyer",
    }
