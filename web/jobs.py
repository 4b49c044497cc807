"""A tenant job's progress page: the reusable progress component over a `jobs` row.

Screens that start long work send the user here (or embed the component) with the
job's id; the row lives in the tenant's schema, so another tenant's job id finds
nothing.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Flask, abort, render_template, url_for
from flask.typing import ResponseReturnValue

from core import jobs
from core.security.authz import login_only
from web import hosts, progress

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def _job(job_id: uuid.UUID) -> tuple[jobs.Job, progress.ProgressState]:
    job = jobs.get_job(job_id)
    if job is None:
        abort(404, description="No job has this address.")
    return job, progress.from_job(job, url_for("jobs.status", job_id=job.id))


@bp.get("/<uuid:job_id>")
@login_only
def show(job_id: uuid.UUID) -> ResponseReturnValue:
    job, state = _job(job_id)
    return render_template("jobs/progress.html", job=job, state=state)


@bp.get("/<uuid:job_id>/status")
@login_only
def status(job_id: uuid.UUID) -> ResponseReturnValue:
    _, state = _job(job_id)
    return render_template("jobs/status.html", state=state)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
