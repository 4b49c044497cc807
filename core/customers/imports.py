"""Bulk import of customers from a CSV file: upload, column mapping, a chunked job.

The uploaded file is kept under the instance folder, one folder per tenant
(`uploads/<tenant slug>/<uuid>.csv`), so an id from another tenant finds nothing. The
import's state lives in its `jobs` row: the payload names the file and the mapping,
the result holds the counts and the bad rows' line, field and reason (never their
values: the download re-reads the file for those). CSV only: openpyxl is not a
dependency.

Each chunk of rows is validated with core.customers.rules.clean and inserted with one
batched INSERT in its own transaction. Idempotency (a re-run of the same file, or a
job retried after a crash, creates no duplicates): a row is skipped when a customer
already exists, or an earlier row of the same chunk is being created, with the same
email (case-insensitive), the same national id (blind index), or the same first and
last name (case-insensitive) and date of birth. Every customer row counts, inactive
and merged ones too.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import current_app
from flask_login import current_user
from sqlalchemy import func, insert, select, tuple_
from werkzeug.exceptions import NotFound

from core import audit, jobs
from core.customers.models import COMPANY, PERSON, Customer
from core.customers.rules import CustomerInvalid, agent_ids_of, clean
from core.db import db
from core.security import scope
from core.security.authz import authorize
from core.security.pii import index_value
from core.tenancy import require_tenant

JOB_TYPE = "customers.import"
CHUNK = 500
MAX_BYTES = 50 * 1024 * 1024
# Stored in the job's result; more would bloat the row (the count stays exact).
MAX_ERRORS = 5000
# Plain-text fields a column may fill; lists, objects and booleans are left to the API.
FIELDS = (
    "kind",
    "first_name",
    "last_name",
    "date_of_birth",
    "company_name",
    "registration_number",
    "national_id",
    "email",
    "phone",
    "preferred_channel",
    "kyc_status",
    "notes",
)
# Header spellings (lower-case, letters and digits only) -> field.
ALIASES = {
    "firstname": "first_name",
    "givenname": "first_name",
    "forename": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "familyname": "last_name",
    "dob": "date_of_birth",
    "dateofbirth": "date_of_birth",
    "birthdate": "date_of_birth",
    "company": "company_name",
    "companyname": "company_name",
    "registrationnumber": "registration_number",
    "companynumber": "registration_number",
    "nationalid": "national_id",
    "ssn": "national_id",
    "email": "email",
    "emailaddress": "email",
    "mail": "email",
    "phone": "phone",
    "phonenumber": "phone",
    "telephone": "phone",
    "mobile": "phone",
    "kind": "kind",
    "type": "kind",
    "channel": "preferred_channel",
    "preferredchannel": "preferred_channel",
    "kyc": "kyc_status",
    "kycstatus": "kyc_status",
    "notes": "notes",
    "note": "notes",
}


class ImportInvalid(ValueError):
    """A file or mapping that cannot be imported; `errors` maps each field to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items())))
        self.errors = errors


# --- The uploaded file ---------------------------------------------------------------


def _folder() -> Path:
    return Path(current_app.config["INSTANCE_PATH"]) / "uploads" / require_tenant().slug


def _path(upload_id: uuid.UUID | str) -> Path:
    """The current tenant's file `upload_id`; NotFound if it has none by that id."""
    try:
        key = uuid.UUID(str(upload_id))
    except ValueError:
        raise NotFound("No upload has this address.") from None
    path = _folder() / f"{key}.csv"
    if not path.is_file():
        raise NotFound("No upload has this address.")
    return path


def save_upload(data: bytes) -> uuid.UUID:
    """Keep an uploaded CSV file (UTF-8, a header row, at least one data row)."""
    authorize("customers:create")
    if len(data) > MAX_BYTES:
        raise ImportInvalid({"file": [f"At most {MAX_BYTES // (1024 * 1024)} MB."]})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportInvalid({"file": ["Must be a CSV file in UTF-8."]}) from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or not any(name.strip() for name in header) or next(rows, None) is None:
        raise ImportInvalid({"file": ["Must have a header row and at least one data row."]})
    if len(set(header)) != len(header):
        raise ImportInvalid({"file": ["Column names must be unique."]})
    upload_id = uuid.uuid4()
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{upload_id}.csv").write_text(text, encoding="utf-8")
    return upload_id


def headers(upload_id: uuid.UUID | str) -> list[str]:
    with _path(upload_id).open(newline="", encoding="utf-8") as file:
        return next(csv.reader(file))


def _records(upload_id: uuid.UUID | str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {column: value}) per data row; the header is line 1."""
    with _path(upload_id).open(newline="", encoding="utf-8") as file:
        yield from enumerate(csv.DictReader(file, restval=""), 2)


def guess_mapping(columns: list[str]) -> dict[str, str]:
    """Column -> field ("" for none), from the header names; each field used once."""
    mapping, used = {}, set()
    for column in columns:
        key = re.sub(r"[^a-z0-9]", "", column.lower())
        field = ALIASES.get(key, "")
        mapping[column] = "" if field in used else field
        used.add(field)
    return mapping


# --- Starting ------------------------------------------------------------------------


def _check_mapping(columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    errors: dict[str, list[str]] = {}
    chosen = {column: mapping.get(column) or "" for column in columns}
    for column, field in chosen.items():
        if field and field not in FIELDS:
            errors[column] = ["Unknown customer field."]
    fields = [field for field in chosen.values() if field]
    for field in {field for field in fields if fields.count(field) > 1}:
        errors[field] = ["Chosen for more than one column."]
    if not fields:
        errors["mapping"] = ["Map at least one column."]
    if errors:
        raise ImportInvalid(errors)
    return {column: field for column, field in chosen.items() if field}


def start(upload_id: uuid.UUID | str, mapping: dict[str, str], user: Any = None) -> jobs.Job:
    """Enqueue the import of upload `upload_id` with `mapping` (column -> field).

    Imported customers go to the caller's agent profile unless the caller sees the
    whole book (then they are unassigned), as a create through the API would.
    """
    subject = current_user if user is None else user
    authorize("customers:create", user)
    columns = headers(upload_id)
    chosen = _check_mapping(columns, mapping)
    agent_id = None
    if not scope.sees_whole_book(subject):
        agent_id = db.session.scalar(agent_ids_of(subject).limit(1))
        if agent_id is None:
            raise ImportInvalid({"agent_id": ["You have no agent profile: ask a manager."]})
    job = jobs.enqueue(
        JOB_TYPE,
        {"upload_id": str(upload_id), "mapping": chosen, "agent_id": agent_id},
        queue="bulk",
    )
    audit.record("customers.import_start", entity="jobs", entity_id=str(job.id))
    db.session.commit()
    return job


def get_import(job_id: uuid.UUID | str) -> jobs.Job:
    """The current tenant's import job `job_id`; NotFound for anything else."""
    job = jobs.get_job(job_id)
    if job is None or job.type != JOB_TYPE:
        raise NotFound("No import has this address.")
    return job


# --- The job -------------------------------------------------------------------------


def _payload(raw: dict[str, str], mapping: dict[str, str]) -> dict[str, Any]:
    """The row as rules.clean takes it: blank cells are not sent; a missing kind is a
    company when a company name is given, else a person."""
    payload: dict[str, Any] = {}
    for column, field in mapping.items():
        value = (raw.get(column) or "").strip()
        if value:
            payload[field] = value.lower() if field in ("kind", "preferred_channel") else value
    if "kind" not in payload:
        payload["kind"] = COMPANY if payload.get("company_name") else PERSON
    return payload


def _keys(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """The identities a row is a duplicate by (see the module docstring)."""
    keys: list[tuple[str, Any]] = []
    if values.get("email"):
        keys.append(("email", values["email"].lower()))
    if values.get("national_id"):
        keys.append(("nid", index_value(Customer.national_id, values["national_id"])))
    if values.get("first_name") and values.get("last_name") and values.get("date_of_birth"):
        name = (values["first_name"].lower(), values["last_name"].lower())
        keys.append(("name", (*name, values["date_of_birth"])))
    return keys


def _existing(candidates: list[list[tuple[str, Any]]]) -> set[tuple[str, Any]]:
    """Which of the candidate keys customers on file already have."""
    wanted: dict[str, set[Any]] = {"email": set(), "nid": set(), "name": set()}
    for keys in candidates:
        for kind, value in keys:
            wanted[kind].add(value)
    found: set[tuple[str, Any]] = set()
    if wanted["email"]:
        query = select(func.lower(Customer.email)).where(
            func.lower(Customer.email).in_(wanted["email"])
        )
        found |= {("email", email) for email in db.session.scalars(query)}
    if wanted["nid"]:
        query = select(Customer.national_id_index).where(
            Customer.national_id_index.in_(wanted["nid"])
        )
        found |= {("nid", index) for index in db.session.scalars(query)}
    if wanted["name"]:
        # Dates of birth are encrypted: match the names in SQL, compare dates here.
        names = {(first, last) for first, last, _ in wanted["name"]}
        query = select(
            func.lower(Customer.first_name), func.lower(Customer.last_name), Customer.date_of_birth
        ).where(tuple_(func.lower(Customer.first_name), func.lower(Customer.last_name)).in_(names))
        found |= {("name", tuple(row)) for row in db.session.execute(query)}
    return found


def _import_chunk(
    records: list[tuple[int, dict[str, str]]], mapping: dict[str, str], agent_id: int | None
) -> tuple[int, int, list[dict[str, Any]]]:
    """Validate, skip duplicates, insert the rest in one statement: (created, skipped,
    errors). The caller commits."""
    errors: list[dict[str, Any]] = []
    valid: list[tuple[int, dict[str, Any]]] = []
    for line, raw in records:
        try:
            valid.append((line, clean(_payload(raw, mapping))))
        except CustomerInvalid as exc:
            for field, messages in sorted(exc.errors.items()):
                errors.append({"line": line, "field": field, "reason": " ".join(messages)})
    keyed = [(line, values, _keys(values)) for line, values in valid]
    seen = _existing([keys for _, _, keys in keyed])
    actor = audit.current_actor()
    rows, skipped = [], 0
    for _, values, keys in keyed:
        if any(key in seen for key in keys):
            skipped += 1
            continue
        seen.update(keys)
        row = {**values, "agent_id": agent_id, "created_by": actor, "updated_by": actor}
        if values.get("national_id"):
            # The ORM keeps the blind index on assignment; a bulk insert must set it.
            row["national_id_index"] = index_value(Customer.national_id, values["national_id"])
        rows.append(row)
    if rows:
        db.session.execute(insert(Customer), rows)
        audit.record(
            "customers.import",
            entity="customers",
            details={"created": len(rows), "lines": [records[0][0], records[-1][0]]},
        )
    return len(rows), skipped, errors


@jobs.job_type(JOB_TYPE, permission="customers:create")
def run_import(
    ctx: jobs.JobContext, upload_id: str, mapping: dict[str, str], agent_id: int | None
) -> dict[str, Any]:
    total = sum(1 for _ in _records(upload_id))
    created = skipped = failed_rows = 0
    errors: list[dict[str, Any]] = []
    done = 0
    chunk: list[tuple[int, dict[str, str]]] = []

    def flush() -> None:
        nonlocal created, skipped, failed_rows, done
        made, same, bad = _import_chunk(chunk, mapping, agent_id)
        ctx.session.commit()  # the chunk is durable, then progress says so
        created, skipped, done = created + made, skipped + same, done + len(chunk)
        failed_rows += len({error["line"] for error in bad})
        errors.extend(bad[: max(0, MAX_ERRORS - len(errors))])
        ctx.progress(done, total, f"{done} of {total} rows")
        chunk.clear()

    for record in _records(upload_id):
        chunk.append(record)
        if len(chunk) == CHUNK:
            flush()
    if chunk:
        flush()
    return {
        "upload_id": upload_id,
        "total": total,
        "created": created,
        "skipped": skipped,
        "failed": failed_rows,
        "errors": errors,
        "errors_truncated": len(errors) >= MAX_ERRORS,
    }


def error_rows_csv(job: jobs.Job) -> str:
    """The bad rows of a finished import: their original columns and an `error` column,
    ready to fix and upload again."""
    reasons: dict[int, list[str]] = {}
    for error in (job.result or {}).get("errors", []):
        reasons.setdefault(error["line"], []).append(f"{error['field']}: {error['reason']}")
    upload_id = job.payload["upload_id"]
    columns = headers(upload_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, "error"])
    for line, raw in _records(upload_id):
        if line in reasons:
            writer.writerow(
                [*(raw.get(column, "") for column in columns), "; ".join(reasons[line])]
            )
    return out.getvalue()
