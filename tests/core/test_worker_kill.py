"""A worker killed with SIGKILL mid-job loses no committed work and duplicates nothing.

A real `powerbuyer worker` runs a chunked, idempotent job; half-way through, both the
worker and its work-horse get SIGKILL. The heartbeat stops, the reaper (a scheduler
tick) declares the job abandoned and requeues it, a new worker runs it again, and the
table ends up with exactly the rows the job writes, once each.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from flask import Flask

from core import jobs
from core.tenancy import Tenant
from tests.core import jobs_support as support

ROWS, CHUNK = 40, 4


def test_a_job_killed_mid_way_is_reaped_retried_and_finished_once(
    app: Flask, app_config: dict, alpha: Tenant, tmp_path: Path
):
    support.create_table(app, alpha, support.CHUNK_TABLE)
    job_id = support.enqueue_committed(
        app,
        alpha,
        "test.chunks",
        {"rows": ROWS, "chunk": CHUNK, "pause": 0.25},
        queue="bulk",
    )
    written = lambda: support.count_rows(app, alpha, support.CHUNK_TABLE, str(job_id))  # noqa: E731
    log = tmp_path / "workers.log"

    def midway() -> jobs.Job | None:
        job = support.load_job(app, alpha, job_id)
        return job if job.status == "running" and 2 * CHUNK <= job.progress < ROWS else None

    with support.worker_process(app_config, log, burst=False) as first:
        job = support.wait_for(midway, 60, "the job to be half-way")
        horse = support.horse_pid(job.message)
        assert horse is not None and horse != first.pid
        os.kill(first.pid, signal.SIGKILL)
        os.kill(horse, signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL

    killed = support.load_job(app, alpha, job_id)
    assert (killed.status, killed.attempts) == ("running", 1)
    assert 0 < written() < ROWS

    abandoned_after = app.config["JOB_ABANDONED_AFTER_SECONDS"]

    def requeued() -> bool:
        with app.app_context():
            return jobs.Reaped(alpha.id, job_id, "requeued") in jobs.scheduler_tick().reaped

    support.wait_for(requeued, abandoned_after + 10, "the reaper to requeue the job", 0.2)
    reaped = support.load_job(app, alpha, job_id)
    assert reaped.status == "queued"
    assert reaped.message.startswith("Requeued (abandoned: no heartbeat")
    assert jobs.rq_job_id(alpha.id, job_id, 1) in support.queued_rq_ids(app, "bulk")

    with support.worker_process(app_config, log, burst=True) as second:
        assert second.wait(timeout=60) == 0

    done = support.load_job(app, alpha, job_id)
    assert (done.status, done.attempts, done.error) == ("finished", 2, None)
    assert (done.progress, done.total, done.result) == (ROWS, ROWS, {"rows": ROWS})
    assert written() == ROWS
