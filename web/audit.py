"""The audit screen (`/audit`) and its CSV export (`/audit.csv`), for `audit:read`.

Filters travel in the query string, so a filtered view is a link. The filter form
swaps only the results (`#audit-results`) through htmx; pages go back in time by
id (`?before=<id>`, keyset pagination). Exporting is itself audited.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from wtforms import DateField, Form, IntegerField, StringField, ValidationError
from wtforms.validators import Length, NumberRange, Optional

from core import audit
from core.db import db
from core.hookspecs import MenuItem
from core.security.authz import requires
from core.tenancy import Tenant, tenant_context
from web import hosts, menu
from web.errors import ValidationFailed

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50
RESULTS_ID = "audit-results"
FILTER_FIELDS = ("user", "entity", "action", "date_from", "date_to")


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class FilterForm(Form):
    user = StringField("User", [Optional(), Length(max=255)], filters=[_strip])
    entity = StringField("Entity", [Optional(), Length(max=100)], filters=[_strip])
    action = StringField("Action", [Optional(), Length(max=100)], filters=[_strip])
    date_from = DateField("From (UTC)", [Optional()])
    date_to = DateField("To (UTC)", [Optional()])
    before = IntegerField("Before id", [Optional(), NumberRange(min=1)])

    def validate_date_to(self, field: DateField) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")

    def entry_filter(self) -> audit.EntryFilter:
        return audit.EntryFilter(
            actor=self.user.data or None,
            entity=self.entity.data or None,
            action=self.action.data or None,
            since=_midnight(self.date_from.data),
            # Inclusive of the whole last day.
            until=_midnight(self.date_to.data + timedelta(days=1) if self.date_to.data else None),
        )

    def query_args(self) -> dict[str, str]:
        """The filters as they were typed, for links to other pages and the export."""
        return {name: request.args[name] for name in FILTER_FIELDS if request.args.get(name)}


def _midnight(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def _wants_results_only() -> bool:
    return request.headers.get("HX-Request") == "true" and (
        request.headers.get("HX-Target") == RESULTS_ID
    )


@bp.get("/audit")
@requires("audit:read")
def index() -> ResponseReturnValue:
    form = FilterForm(request.args)
    valid = form.validate()
    entries: list[audit.AuditEntry] = []
    older: str | None = None
    if valid:
        entries = audit.find_entries(
            form.entry_filter(), before=form.before.data, limit=PAGE_SIZE + 1
        )
        if len(entries) > PAGE_SIZE:
            entries = entries[:PAGE_SIZE]
            older = url_for("audit.index", **form.query_args(), before=entries[-1].id)
    context: dict[str, Any] = {
        "form": form,
        "entries": entries,
        "labels": audit.actor_labels({entry.actor for entry in entries}),
        "older": older,
        "newest": url_for("audit.index", **form.query_args()) if form.before.data else None,
        "export": url_for("audit.export", **form.query_args()),
        "results_id": RESULTS_ID,
        "utc": UTC,
    }
    template = "audit/_results.html" if _wants_results_only() else "audit/index.html"
    return render_template(template, **context), 200 if valid else 422


# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


CSV_COLUMNS = (
    "id",
    "at",
    "actor",
    "user",
    "actor_ip",
    "request_id",
    "action",
    "entity",
    "entity_id",
    "changes",
    "details",
    "hash",
)


def _csv(filters: audit.EntryFilter, tenant: Tenant) -> Iterator[str]:
    # The body is produced after the view has returned, when the request's tenant
    # may already be unset: the generator carries its own.
    with tenant_context(tenant):
        yield from _csv_rows(filters)


def _csv_rows(filters: audit.EntryFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        chunk = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return chunk

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for page in audit.entry_pages(filters):
        labels = audit.actor_labels({entry.actor for entry in page})
        for entry in page:
            writer.writerow(
                _cell(value)
                for value in (
                    entry.id,
                    entry.at.astimezone(UTC).isoformat(),
                    entry.actor,
                    labels.get(entry.actor),
                    entry.actor_ip,
                    entry.request_id,
                    entry.action,
                    entry.entity,
                    entry.entity_id,
                    entry.changes,
                    entry.details,
                    entry.hash,
                )
            )
        yield flush()


@bp.get("/audit.csv")
@requires("audit:read")
def export() -> ResponseReturnValue:
    form = FilterForm(request.args)
    if not form.validate():
        raise ValidationFailed(form.errors, "The filters are not valid.")
    filters = form.entry_filter()
    audit.record("audit.export", details={"format": "csv", "filters": form.query_args()})
    db.session.commit()
    filename = f"audit-{g.tenant.slug}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
    return Response(
        stream_with_context(_csv(filters, g.tenant)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    menu.add_item(
        app,
        MenuItem(
            "Audit trail", "audit.index", section="settings", permission="audit:read", order=90
        ),
    )
