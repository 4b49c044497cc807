"""A worker quits promptly even when its command listener has just started a poll.

RQ's listener thread polls its pub/sub connection for up to 60 s at a time, and
redis-py 8.2's `PubSubWorkerThread.stop()` waits for the poll to end. When the thread
reads the UNSUBSCRIBE reply and starts its next poll before being told to stop, RQ's
own `Worker.unsubscribe` waits out that poll (60 s: seen as a `powerbuyer worker
--burst` that finished its jobs and did not exit). `core.worker.Worker` bounds the
wait.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask

from core import jobs
from core.worker import Worker


def test_unsubscribing_does_not_wait_out_the_listeners_poll(app: Flask) -> None:
    redis = app.extensions["redis"]
    with app.app_context():
        worker = Worker([jobs.queue("default")], connection=redis)
    worker.subscribe()
    assert worker.pubsub is not None and worker.pubsub_thread is not None
    thread = worker.pubsub_thread
    time.sleep(0.3)  # the listener is in its poll
    unsubscribe = worker.pubsub.unsubscribe

    def unsubscribe_then_let_the_listener_poll_again(*args: Any) -> None:
        unsubscribe(*args)
        time.sleep(0.5)  # it reads the reply and starts its next 60 s poll

    worker.pubsub.unsubscribe = unsubscribe_then_let_the_listener_poll_again  # type: ignore[method-assign]
    started = time.monotonic()
    worker.unsubscribe()
    took = time.monotonic() - started

    assert took < 0.5 + Worker.STOP_WAIT_SECONDS + 1.0, f"unsubscribe took {took:.1f} s"
    assert thread.daemon  # still polling, it cannot hold the process's exit
