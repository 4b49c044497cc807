"""`powerbuyer worker` and `powerbuyer scheduler`.

The worker is RQ's forking worker: the command builds the app once, and each job runs
in a forked work-horse that inherits it (core.jobs.run gives the job its own app
context, tenant and session). The scheduler is a plain loop calling
`core.jobs.scheduler_tick`, not RQ's CronScheduler: periodic jobs fan out to every
active tenant and need a database row per tenant, and the reaper must run even when
no worker is alive, so the loop does both itself (see docs/jobs.md).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
import rq
from flask import current_app
from flask.cli import with_appcontext

from core import jobs

log = logging.getLogger(__name__)


@click.command("worker")
@click.option(
    "--queues",
    default=",".join(jobs.QUEUES),
    show_default=True,
    help="Comma-separated queues, in priority order.",
)
@click.option("--burst", is_flag=True, help="Quit when the queues are empty.")
@with_appcontext
def worker_command(queues: str, burst: bool) -> None:
    """Run an RQ worker on the Power Buyer queues."""
    names = [name.strip() for name in queues.split(",") if name.strip()]
    try:
        rq_queues = [jobs.queue(name) for name in names]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--queues") from exc
    worker = Worker(rq_queues, connection=current_app.extensions["redis"])
    worker.work(burst=burst, logging_level="INFO")


class Worker(rq.Worker):
    """RQ's worker, with a shutdown that does not wait out its pub/sub listener's poll.

    RQ listens for commands (stop a job, shut down) on a thread that polls its pub/sub
    connection for up to 60 s at a time, and stops it with `PubSubWorkerThread.stop()`,
    which since redis-py 8.2 waits for the thread to end. A thread that has just read
    the UNSUBSCRIBE reply and started its next poll then holds a burst run or a
    SIGTERM's warm shutdown for a minute. Here the wait is bounded: a thread still
    polling after it is a daemon, and its connection is left to it rather than
    disconnected under its read.
    """

    STOP_WAIT_SECONDS = 1.0

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if thread is None or self.pubsub is None:
            return
        channel = self.pubsub_channel_name
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, channel)
        self.pubsub.unsubscribe()
        thread.stop(timeout=self.STOP_WAIT_SECONDS)
        if not thread.is_alive():
            self.pubsub.close()


def _tick_seconds() -> float:
    # Often enough to notice an abandoned job well within a second threshold, rarely
    # enough that a thousand tenants are not scanned every second in production.
    return min(10.0, max(1.0, current_app.config["JOB_ABANDONED_AFTER_SECONDS"] / 3))


@click.command("scheduler")
@click.option("--interval", type=float, help="Seconds between ticks (default from config).")
@with_appcontext
def scheduler_command(interval: float | None) -> None:
    """Enqueue periodic jobs for every tenant and reap abandoned jobs, until stopped."""
    seconds = interval or _tick_seconds()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    periodic = ", ".join(jobs.PERIODIC) or "none"
    click.echo(f"scheduler: ticking every {seconds:g}s; periodic jobs: {periodic}")
    while not stop.is_set():
        try:
            tick = jobs.scheduler_tick()
        except Exception:
            # A database or Redis outage must not end the scheduler; the next tick retries.
            log.exception("scheduler tick failed")
        else:
            for reaped in tick.reaped:
                log.info(
                    "reaper: job %s of tenant %s %s", reaped.job_id, reaped.tenant_id, reaped.action
                )
            for tenant_id, job_id, name in tick.enqueued:
                log.info("scheduler: enqueued %s for tenant %s as job %s", name, tenant_id, job_id)
        stop.wait(seconds)
