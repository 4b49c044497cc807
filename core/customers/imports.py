"""Bulk import of customers from a CSV file or an Excel workbook: upload, column
mapping, a chunked job.

A workbook (.xlsx) is read once, at upload: the header row and the data rows of its
first sheet become a CSV file, so the mapping screen, the job and the error report
are the same for both. Line numbers are the sheet's row numbers (the header is line 1).

The uploaded file is kept under the instance folder, one folder per tenant
(`uploads/<tenant slug>/<uuid>.csv`), so an id from another tenant finds nothing. The
import's state lives in its `jobs` row: the payload names the file and the mapping,
the result holds the counts and the bad rows' line, field and reason (never their
values). When the job finishes, the upload is replaced by the file of its refused rows
(`<uuid>.refused.csv`, what the error report downloads): the imported rows' personal
data then lives in the customers table only, where GDPR erasure reaches it.

Each chunk of rows is validated with core.customers.rules.clean and written with one
COPY in its own transaction. Idempotency (a re-run of the same file, or a
job retried after a crash, creates no duplicates): a row is skipped when a customer
already exists, or an earlier row of the same chunk is being created, with the same
email (case-insensitive), the same national id (blind index), or the same first and
last name (case-insensitive) and date of birth (the identity index, see
core.customers.models). Every customer row counts, inactive and merged ones too.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from flask import current_app
from flask_login import current_user
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from psycopg import sql
from sqlalchemy import ARRAY, Text, any_, bindparam, func, select, tuple_
from werkzeug.exceptions import NotFound

from core import audit, jobs
from core.agents import queries as agent_queries
from core.customers.models import COMPANY, IDENTITY_FIELDS, PERSON, Customer, identity_value
from core.customers.rules import CustomerInvalid, agent_ids_of, clean
from core.db import db
from core.security.authz import authorize
from core.security.pii import EncryptedString, index_value
from core.tenancy import require_tenant

JOB_TYPE = "customers.import"
CHUNK = 500
MAX_BYTES = 50 * 1024 * 1024
# Every .xlsx file is a zip archive; a CSV file never starts like one.
ZIP_MAGIC = b"PK\x03\x04"
NOT_READABLE = "Must be a CSV file in UTF-8 or an Excel workbook (.xlsx)."
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


def _cell(value: Any) -> str:
    """A workbook cell as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # Excel has no date type: a date is a date-time at midnight.
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone number typed as a number: no ".0"
    return str(value)


def _sheet_rows(data: bytes) -> Iterator[list[str]]:
    """The first sheet's rows as text, trailing empty cells dropped."""
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ImportInvalid({"file": [NOT_READABLE]}) from None
    try:
        for values in workbook.worksheets[0].iter_rows(values_only=True):
            row = [_cell(value) for value in values]
            while row and not row[-1].strip():
                row.pop()
            yield row
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ImportInvalid({"file": [NOT_READABLE]}) from None
    finally:
        workbook.close()


def _xlsx_text(data: bytes) -> str:
    """The workbook's first sheet as CSV text: the header row's width, one line per
    sheet row (a blank row stays a blank line, so line numbers are row numbers), the
    blank rows at the end left out."""
    rows: Iterable[list[str]] = _sheet_rows(data)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    width, blanks = 0, 0
    for number, row in enumerate(rows, 1):
        if number == 1:
            width = len(row)
            writer.writerow(row)
            continue
        if not row:
            blanks += 1  # written only if a row with data follows
            continue
        for _ in range(blanks):
            writer.writerow([""] * max(width, 1))
        blanks = 0
        writer.writerow(row + [""] * (width - len(row)))
        if out.tell() > MAX_BYTES:
            raise ImportInvalid({"file": [f"At most {MAX_BYTES // (1024 * 1024)} MB of data."]})
    return out.getvalue()


def _is_xlsx(data: bytes, filename: str | None) -> bool:
    return data.startswith(ZIP_MAGIC) or Path(filename or "").suffix.lower() == ".xlsx"


def save_upload(data: bytes, filename: str | None = None) -> uuid.UUID:
    """Keep an uploaded CSV file (UTF-8) or workbook (.xlsx, its first sheet): a header
    row and at least one data row."""
    authorize("customers:create")
    if len(data) > MAX_BYTES:
        raise ImportInvalid({"file": [f"At most {MAX_BYTES // (1024 * 1024)} MB."]})
    if _is_xlsx(data, filename):
        text = _xlsx_text(data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportInvalid({"file": [NOT_READABLE]}) from None
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
    """(line, {column: value}) per data row; the header is line 1. Rows with nothing
    in them (a sheet's blank rows) are skipped, their lines counted."""
    with _path(upload_id).open(newline="", encoding="utf-8") as file:
        for line, raw in enumerate(csv.DictReader(file, restval=""), 2):
            if any(isinstance(v, str) and v.strip() for v in raw.values()):
                yield line, raw


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
    if not agent_queries.manages_customers(subject):
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
    identity = identity_value(*(values.get(name) for name in IDENTITY_FIELDS))
    if identity is not None:
        keys.append(("name", identity))
    return keys


def _unindexed(names: set[tuple[str, str]]) -> set[str]:
    """The identities of the customers with one of these (first, last) names who have
    no identity index yet (written before it existed, or by a bulk write that left it
    out): found by name through the index of those rows only, their dates of birth
    decrypted here. Nothing to find once identity_backfill has filled them.

    The names go as two arrays, unnested: one index lookup each, where a list of pairs
    becomes an OR of hundreds of conditions, slow to plan and to run.
    """
    pairs = sorted({(first.lower(), last.lower()) for first, last in names})
    if not pairs:
        return set()
    listed = (
        func.unnest(
            bindparam("firsts", [first for first, _ in pairs], type_=ARRAY(Text)),
            bindparam("lasts", [last for _, last in pairs], type_=ARRAY(Text)),
        )
        .table_valued("first", "last")
        .render_derived()
    )
    lowered = tuple_(func.lower(Customer.first_name), func.lower(Customer.last_name))
    query = select(Customer.first_name, Customer.last_name, Customer.date_of_birth).where(
        Customer.identity_index.is_(None),
        Customer.date_of_birth.is_not(None),
        lowered.in_(select(listed.c.first, listed.c.last)),
    )
    return {identity_value(*row) for row in db.session.execute(query)} - {None}


def _existing(
    candidates: list[list[tuple[str, Any]]], names: set[tuple[str, str]]
) -> set[tuple[str, Any]]:
    """Which of the candidate keys customers on file already have (`names`: the first
    and last names of the candidates with an identity key)."""
    wanted: dict[str, set[Any]] = {"email": set(), "nid": set(), "name": set()}
    for keys in candidates:
        for kind, value in keys:
            wanted[kind].add(value)
    found: set[tuple[str, Any]] = set()

    def on_file(column: Any, values: set[str]) -> set[str]:
        # One array parameter, not an IN list of hundreds: less to render and bind.
        listed = bindparam("values", list(values), type_=ARRAY(Text))
        return set(db.session.scalars(select(column).where(column == any_(listed))))

    if wanted["email"]:
        found |= {("email", e) for e in on_file(func.lower(Customer.email), wanted["email"])}
    if wanted["nid"]:
        found |= {("nid", i) for i in on_file(Customer.national_id_index, wanted["nid"])}
    if wanted["name"]:
        found |= {("name", i) for i in on_file(Customer.identity_index, wanted["name"])}
        found |= {("name", identity) for identity in _unindexed(names)}
    return found


def _copy(rows: list[dict[str, Any]]) -> None:
    """Write `rows` (dicts with the same keys) with one COPY, in the session's
    transaction (so in the tenant's schema, as its role). Encrypted columns are sealed
    by their column type, as an INSERT would; the other values are as they are."""
    table = Customer.__table__
    columns = list(rows[0])
    sealed = {name for name in columns if isinstance(table.c[name].type, EncryptedString)}
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor = db.session.connection().connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [
                    table.c[name].type.process_bind_param(row[name], None)
                    if name in sealed
                    else row[name]
                    for name in columns
                ]
            )


def _import_chunk(
    records: list[tuple[int, dict[str, str]]], mapping: dict[str, str], agent_id: int | None
) -> tuple[int, int, list[dict[str, Any]]]:
    """Validate, skip duplicates, write the rest with one COPY: (created, skipped,
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
    names = {
        (values["first_name"], values["last_name"])
        for _, values, keys in keyed
        if any(kind == "name" for kind, _ in keys)
    }
    seen = _existing([keys for _, _, keys in keyed], names)
    actor = audit.current_actor()
    # The same columns in every row, for one COPY.
    blank = dict.fromkeys((*FIELDS, "national_id_index", "identity_index"))
    blank["kyc_status"] = Customer.__table__.c.kyc_status.default.arg
    rows, skipped = [], 0
    for _, values, keys in keyed:
        if any(key in seen for key in keys):
            skipped += 1
            continue
        seen.update(keys)
        row = {**blank, **values, "agent_id": agent_id, "created_by": actor, "updated_by": actor}
        # The ORM keeps the blind indexes on assignment; a bulk write must set them.
        if values.get("national_id"):
            row["national_id_index"] = index_value(Customer.national_id, values["national_id"])
        row["identity_index"] = dict(keys).get("name")
        rows.append(row)
    if rows:
        _copy(rows)
        audit.record(
            "customers.import",
            entity="customers",
            details={"created": len(rows), "lines": [records[0][0], records[-1][0]]},
        )
    return len(rows), skipped, errors


def _refused_path(upload_id: uuid.UUID | str) -> Path:
    return _folder() / f"{uuid.UUID(str(upload_id))}.refused.csv"


def _write_refused(
    writer: Any,
    columns: list[str],
    records: list[tuple[int, dict[str, str]]],
    bad: list[dict[str, Any]],
) -> None:
    """Append the chunk's refused rows, as uploaded, with their reasons."""
    reasons: dict[int, list[str]] = {}
    for error in bad:
        reasons.setdefault(error["line"], []).append(f"{error['field']}: {error['reason']}")
    for line, raw in records:
        if line in reasons:
            values = [raw.get(column, "") for column in columns]
            writer.writerow([*values, "; ".join(reasons[line])])


@jobs.job_type(JOB_TYPE, permission="customers:create")
def run_import(
    ctx: jobs.JobContext, upload_id: str, mapping: dict[str, str], agent_id: int | None
) -> dict[str, Any]:
    total = sum(1 for _ in _records(upload_id))
    columns = headers(upload_id)
    created = skipped = failed_rows = 0
    errors: list[dict[str, Any]] = []
    done = 0
    chunk: list[tuple[int, dict[str, str]]] = []
    # One file per attempt: a run the reaper gave up on cannot write into this one's.
    partial = _refused_path(upload_id).with_suffix(f".{ctx.attempt}.part")
    with partial.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*columns, "error"])

        def flush() -> None:
            nonlocal created, skipped, failed_rows, done
            made, same, bad = _import_chunk(chunk, mapping, agent_id)
            ctx.session.commit()  # the chunk is durable, then progress says so
            _write_refused(writer, columns, chunk, bad)
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
    # The refused rows are what is left to fix; the rest of the upload is on file now.
    partial.replace(_refused_path(upload_id))
    _path(upload_id).unlink()
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
    """The refused rows of a finished import: their original columns and an `error`
    column, ready to fix and upload again."""
    path = _refused_path(job.payload["upload_id"])
    if not path.is_file():
        raise NotFound("This import has no refused rows to download.")
    return path.read_text(encoding="utf-8")
