"""What the progress component (templates/_progress.html) shows, from any long work.

A signup and a tenant job both become a `ProgressState`; the component renders a
<progress> bar that polls `poll_url` every second until the work is finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import jobs
from tenants import signup as signups
from tenants.models import Signup


@dataclass(frozen=True)
class ProgressState:
    status: str
    # None when the work has no known size: the bar is then indeterminate.
    percent: int | None
    message: str | None
    error: str | None
    poll_url: str
    finished: bool
    succeeded: bool

    @property
    def failed(self) -> bool:
        return self.finished and not self.succeeded


def _clamp(value: float) -> int:
    return max(0, min(100, round(value)))


def from_signup(signup: Signup, poll_url: str) -> ProgressState:
    done = signup.status == "done"
    return ProgressState(
        status=signup.status,
        percent=100 if done else _clamp(signup.progress),
        message=signup.message,
        error=signup.error,
        poll_url=poll_url,
        finished=signup.status in signups.FINISHED,
        succeeded=done,
    )


def from_job(job: jobs.Job, poll_url: str) -> ProgressState:
    # A failed attempt that will be retried is back in `queued`: still in flight.
    done = job.status == jobs.FINISHED
    if done:
        percent: int | None = 100
    elif job.total:
        percent = _clamp(100 * job.progress / job.total)
    else:
        percent = None
    return ProgressState(
        status=job.status,
        percent=percent,
        message=job.message,
        error=job.error,
        poll_url=poll_url,
        finished=job.status in (jobs.FINISHED, jobs.FAILED),
        succeeded=done,
    )
