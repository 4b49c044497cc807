"""Customer import screens: upload a CSV file or an Excel workbook, map its columns,
follow the job, and download the rows it refused. The work is core.customers.imports';
these views parse forms and render (422 with the form and its errors on bad input).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from core.customers import imports
from core.hookspecs import MenuItem
from core.security.authz import requires
from web import hosts, menu, progress

bp = Blueprint("customer_import", __name__, url_prefix="/customers/import")


@bp.get("")
@requires("customers:create")
def upload_form() -> ResponseReturnValue:
    return render_template("customer_import/upload.html", errors={})


@bp.post("")
@requires("customers:create")
def upload() -> ResponseReturnValue:
    file = request.files.get("file")
    try:
        if file is None or not file.filename:
            raise imports.ImportInvalid({"file": ["Choose a CSV or Excel (.xlsx) file."]})
        upload_id = imports.save_upload(file.read(), file.filename)
    except imports.ImportInvalid as exc:
        return render_template("customer_import/upload.html", errors=exc.errors), 422
    return redirect(url_for("customer_import.mapping_form", upload_id=upload_id), 303)


def _mapping_page(
    upload_id: uuid.UUID, mapping: dict[str, str], errors: dict, status: int = 200
) -> tuple[str, int]:
    html = render_template(
        "customer_import/mapping.html",
        upload_id=upload_id,
        mapping=mapping,
        fields=imports.FIELDS,
        errors=errors,
    )
    return html, status


@bp.get("/<uuid:upload_id>")
@requires("customers:create")
def mapping_form(upload_id: uuid.UUID) -> ResponseReturnValue:
    return _mapping_page(upload_id, imports.guess_mapping(imports.headers(upload_id)), {})


@bp.post("/<uuid:upload_id>")
@requires("customers:create")
def start(upload_id: uuid.UUID) -> ResponseReturnValue:
    columns = imports.headers(upload_id)
    mapping = {column: request.form.get(f"map-{index}", "") for index, column in enumerate(columns)}
    try:
        job = imports.start(upload_id, mapping)
    except imports.ImportInvalid as exc:
        return _mapping_page(upload_id, mapping, exc.errors, 422)
    return redirect(url_for("customer_import.show", job_id=job.id), 303)


def _state(job_id: uuid.UUID) -> tuple[object, progress.ProgressState]:
    job = imports.get_import(job_id)
    return job, progress.from_job(job, url_for("customer_import.status", job_id=job.id))


@bp.get("/jobs/<uuid:job_id>")
@requires("customers:create")
def show(job_id: uuid.UUID) -> ResponseReturnValue:
    job, state = _state(job_id)
    return render_template("customer_import/progress.html", job=job, state=state)


@bp.get("/jobs/<uuid:job_id>/status")
@requires("customers:create")
def status(job_id: uuid.UUID) -> ResponseReturnValue:
    job, state = _state(job_id)
    return render_template("customer_import/status.html", job=job, state=state)


@bp.get("/jobs/<uuid:job_id>/errors.csv")
@requires("customers:create")
def errors_csv(job_id: uuid.UUID) -> ResponseReturnValue:
    job = imports.get_import(job_id)
    response = Response(imports.error_rows_csv(job), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=import-errors.csv"
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    # After "Customers" (order 20), for whoever may open the screen.
    menu.add_item(
        app,
        MenuItem(
            "Import customers",
            "customer_import.upload_form",
            permission="customers:create",
            order=21,
        ),
    )
