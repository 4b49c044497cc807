"""GDPR: one person's data across every module (export, erasure), and retention.

Each module registers its tables that hold personal data:

    gdpr.register(
        Customer,
        subject=lambda ref: Customer.id == ref.get("customer_id"),
        erase="pseudonymise",   # or "shred" (delete the rows) or "keep"
        age=Customer.created_at,  # for retention policies
        export_also=(...),        # untagged columns the person's export shows too
        files=...,                # the files a row points at (evidence scans)
    )

- `export(ref)` returns every tagged column of every registered table for that person,
  decrypted, as JSON-ready data, with the files their rows point at (base64). Needs
  customers:export; audited as `gdpr.export`.
- `erase(ref)` deletes the person's rows of "shred" tables, and in "pseudonymise" tables
  (rows the law makes us keep: policies, invoices) replaces what identifies them by
  `erased-<hash>` and clears everything else tagged, encrypted values included. The
  files of erased rows are deleted once the transaction commits. Needs
  customers:delete; audited as `gdpr.erase`.
- Retention policies (one per table and tenant: keep_days, action) run daily as the
  periodic job `gdpr.retention`.

A test fails when a column tagged pii in any tenant table is not covered here.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from core import audit
from core.audit import AuditMixin
from core.db import Base, db
from core.jobs import JobContext, periodic
from core.security import crypto
from core.security.authz import authorize
from core.security.models import User
from core.security.pii import BLIND_INDEX_OF, EncryptedString, PiiTag, tagged_columns
from core.tenancy import require_tenant

log = logging.getLogger(__name__)

PSEUDONYMISE, SHRED, KEEP = "pseudonymise", "shred", "keep"
ERASE_MODES = (PSEUDONYMISE, SHRED, KEEP)
ERASED_PREFIX = "erased-"
ERASED_DOMAIN = "@erased.invalid"
EXPORT_PERMISSION = "customers:export"
ERASE_PERMISSION = "customers:delete"
POLICY_PERMISSION = "settings:update"
RETENTION_ACTIONS = ("erase", "delete")
EXPORT_FORMAT = "powerbuyer-gdpr-export/1"


@dataclass(frozen=True)
class PersonRef:
    """Who a request is about. Each module matches on the identifiers it knows; `keys`
    carries module identifiers such as {"customer_id": 17}."""

    email: str | None = None
    user_id: int | None = None
    keys: Mapping[str, int | str] = field(default_factory=dict)

    def get(self, name: str) -> int | str | None:
        return self.keys.get(name)

    def canonical(self) -> str:
        data = asdict(self) | {"email": self.email.strip().lower() if self.email else None}
        return json.dumps(data, sort_keys=True, default=str)


Subject = Callable[[PersonRef], "ColumnElement[bool] | None"]


@dataclass(frozen=True)
class PersonalFile:
    """A file outside the database that a row points at (an evidence scan): exported
    with the row, deleted when the row is erased."""

    path: Path
    # The name to show in an export (what the file was called when uploaded).
    name: str


# A row (every column, by name) -> the files it points at.
Files = Callable[[Mapping[str, Any]], Iterable[PersonalFile]]


@dataclass(frozen=True)
class Entry:
    table: Table
    # The person's rows, or None when this kind of reference cannot match here.
    subject: Subject
    erase: str
    age: Column[Any] | None
    erase_also: Mapping[str, Any]
    export_also: tuple[Column[Any], ...] = ()
    files: Files | None = None

    @property
    def name(self) -> str:
        return self.table.name


def _table(model: Any) -> Table:
    table = getattr(model, "__table__", model)
    if not isinstance(table, Table):
        raise TypeError(f"{model!r} is neither a mapped class nor a Table")
    return table


def _column(table: Table, column: Any) -> Column[Any]:
    """A column of `table`, from a mapped attribute, a Column or its name."""
    if isinstance(column, str):
        found = table.c.get(column)
    else:
        found = column.property.columns[0] if hasattr(column, "property") else column
    if found is None or found.table is not table:
        raise ValueError(f"{column!r} is not a column of {table.name}")
    return found


def _pseudonymised(column: Column[Any], tag: PiiTag) -> bool:
    return tag.erase == "pseudonym" or (tag.erase is None and not column.nullable)


def _pseudonym(table: Table, pk: tuple[Any, ...], kind: str | None) -> str:
    # Keyed, so it reveals nothing; per row, so unique columns stay unique; stable, so
    # erasing twice changes nothing.
    digest = crypto.keyed_hash(f"gdpr:pseudonym:{table.name}:{json.dumps(pk, default=str)}")
    name = ERASED_PREFIX + digest[:16]
    return name + ERASED_DOMAIN if kind == "email" else name


def _pseudonym_length(kind: str | None) -> int:
    return len(ERASED_PREFIX) + 16 + (len(ERASED_DOMAIN) if kind == "email" else 0)


class RetentionPolicy(AuditMixin, Base):
    """How long a tenant keeps the rows of one GDPR entity, and what happens then."""

    __tablename__ = "retention_policies"
    __table_args__ = (
        CheckConstraint("keep_days > 0", "keep_days_positive"),
        CheckConstraint("action IN ('erase', 'delete')", "action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(100), unique=True)
    keep_days: Mapped[int]
    action: Mapped[str] = mapped_column(String(10))


class Registry:
    """Tables holding personal data, and how to find and erase one person's rows."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries: dict[str, Entry] = {entry.name: entry for entry in entries}

    def register(
        self,
        model: Any,
        *,
        subject: Subject,
        erase: str,
        age: Any = None,
        erase_also: Mapping[str, Any] | None = None,
        export_also: Sequence[Any] = (),
        files: Files | None = None,
    ) -> None:
        """Declare a table holding personal data (see the module docstring).

        `age`: the column whose value ages a row for retention policies. `erase_also`:
        other columns set when a row is erased (users: active=False). `export_also`:
        untagged columns the export shows besides the tagged ones (what a check found,
        and when). `files(row)`: the files a row points at, exported with it and
        deleted when it is erased (rows of such tables cannot be pseudonymised: the
        file would outlive the erasure, so they must be "shred" or "keep").
        """
        table = _table(model)
        if table.name in self._entries:
            raise ValueError(f"table {table.name} is already registered for GDPR")
        if erase not in ERASE_MODES:
            raise ValueError(f"erase must be one of {ERASE_MODES}, not {erase!r}")
        if not table.primary_key.columns:
            raise ValueError(f"table {table.name} has no primary key")
        extra = dict(erase_also or {})
        unknown = sorted(set(extra) - set(table.c.keys()))
        if unknown:
            raise ValueError(f"erase_also names no column of {table.name}: {unknown}")
        age_column = None
        if age is not None:
            age_column = age.property.columns[0] if hasattr(age, "property") else age
        if erase == PSEUDONYMISE:
            if files is not None:
                raise ValueError(f"{table.name}: rows with files are shredded or kept")
            for column, tag in tagged_columns(table):
                self._check_erasable(table, column, tag)
        also = tuple(_column(table, c) for c in export_also)
        self._entries[table.name] = Entry(table, subject, erase, age_column, extra, also, files)

    @staticmethod
    def _check_erasable(table: Table, column: Column[Any], tag: PiiTag) -> None:
        where = f"{table.name}.{column.name}"
        if not _pseudonymised(column, tag):
            if not column.nullable:
                raise ValueError(f"{where} is NOT NULL: erase it with a pseudonym")
            return
        if column.type.python_type is not str:
            raise ValueError(f"{where} cannot hold a pseudonym: make it nullable")
        length = getattr(column.type, "length", None)
        if length is not None and length < _pseudonym_length(tag.kind):
            raise ValueError(f"{where} is too short ({length}) for a pseudonym")

    def _with_files(self, ref: PersonRef) -> bool:
        """Whether a table that can hold files is part of this person's data: audit
        entries then count the files too."""
        return any(e.files is not None and e.subject(ref) is not None for e in self.entries())

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in sorted(self._entries)]

    def uncovered(self, metadata: MetaData) -> list[str]:
        """`table.column` of every pii-tagged column in `metadata` not covered here."""
        return [
            f"{table.name}.{column.name}"
            for table in metadata.sorted_tables
            if table.name not in self._entries
            for column, _ in tagged_columns(table)
        ]

    # --- Export -----------------------------------------------------------------------

    def export(self, ref: PersonRef, *, user: Any = None) -> dict[str, Any]:
        """Everything tagged about the person, decrypted, and the files their rows point
        at; commits its audit entry."""
        authorize(EXPORT_PERMISSION, user)
        tables: dict[str, list[dict[str, Any]]] = {}
        files: list[dict[str, Any]] = []
        for entry in self.entries():
            where = entry.subject(ref)
            if where is None:
                continue
            pk = list(entry.table.primary_key.columns)
            tagged = (c for c, _ in tagged_columns(entry.table))
            columns = list(dict.fromkeys([*pk, *tagged, *entry.export_also]))
            rows = db.session.execute(select(*columns).where(where).order_by(*pk)).all()
            tables[entry.name] = [
                {
                    column.name: audit.jsonable(value)
                    for column, value in zip(columns, row, strict=True)
                }
                for row in rows
            ]
            if entry.files is not None:
                files.extend(_exported_files(entry, where))
        audit.record(
            "gdpr.export",
            entity="person",
            entity_id=person_fingerprint(ref),
            details=_details(
                {"rows": {name: len(rows) for name, rows in tables.items()}},
                files=len(files) if self._with_files(ref) else None,
            ),
        )
        db.session.commit()
        return {
            "format": EXPORT_FORMAT,
            "tenant": require_tenant().slug,
            "exported_at": datetime.now(UTC).isoformat(),
            "subject": audit.jsonable(asdict(ref)),
            "tables": tables,
            "files": files,
        }

    # --- Erasure ----------------------------------------------------------------------

    def erase(self, ref: PersonRef, *, user: Any = None) -> dict[str, int]:
        """Erase the person everywhere, in one transaction; returns rows per table. The
        files of the erased rows are deleted once that transaction has committed."""
        authorize(ERASE_PERMISSION, user)
        counts: dict[str, int] = {}
        kept: list[str] = []
        doomed: list[PersonalFile] = []
        try:
            for entry in self.entries():
                where = entry.subject(ref)
                if where is None:
                    continue
                if entry.erase == KEEP:
                    kept.append(entry.name)
                    continue
                keys = _primary_keys(entry.table, where)
                doomed.extend(_files_of(entry, keys))
                counts[entry.name] = _erase_rows(entry, keys)
            audit.record(
                "gdpr.erase",
                entity="person",
                entity_id=person_fingerprint(ref),
                details=_details(
                    {"rows": counts, "kept": kept},
                    files=len(doomed) if self._with_files(ref) else None,
                ),
            )
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        _delete_files(doomed)
        return counts

    # --- Retention --------------------------------------------------------------------

    def set_policy(
        self, entity: str, keep_days: int, action: str, *, user: Any = None
    ) -> RetentionPolicy:
        """Create or change the tenant's retention policy for `entity`; commits."""
        authorize(POLICY_PERMISSION, user)
        entry = self._entries.get(entity)
        if entry is None:
            raise ValueError(f"entity: {entity!r} is not a table registered for GDPR")
        if entry.age is None:
            raise ValueError(f"entity: {entity} declares no age column for retention")
        if not isinstance(keep_days, int) or isinstance(keep_days, bool) or keep_days < 1:
            raise ValueError("keep_days: a whole number of days, at least 1")
        if action not in RETENTION_ACTIONS:
            raise ValueError(f"action: one of {RETENTION_ACTIONS}")
        if action == "erase" and entry.erase == KEEP:
            raise ValueError(f"action: {entity} is kept on erasure; only 'delete' applies")
        policy = db.session.scalar(select(RetentionPolicy).where(RetentionPolicy.entity == entity))
        before = None
        if policy is None:
            policy = RetentionPolicy(entity=entity, keep_days=keep_days, action=action)
            db.session.add(policy)
        else:
            before = {"keep_days": policy.keep_days, "action": policy.action}
            policy.keep_days, policy.action = keep_days, action
        audit.record(
            "gdpr.retention_policy",
            entity="retention_policies",
            entity_id=entity,
            before=before,
            after={"keep_days": keep_days, "action": action},
        )
        db.session.commit()
        return policy

    def apply_retention(self, now: datetime | None = None, chunk: int = 500) -> dict[str, int]:
        """Erase or delete the rows older than each active policy allows.

        Chunks of `chunk` rows, each committed with its audit entry, so an interrupted
        run keeps what it did and the next run finishes the rest.
        """
        now = now or datetime.now(UTC)
        done: dict[str, int] = {}
        policies = db.session.execute(
            select(RetentionPolicy.entity, RetentionPolicy.keep_days, RetentionPolicy.action)
            .where(RetentionPolicy.is_active)
            .order_by(RetentionPolicy.entity)
        ).all()
        for entity, keep_days, action in policies:
            entry = self._entries.get(entity)
            if entry is None or entry.age is None:
                log.warning("retention policy for %s: no such GDPR entity with an age", entity)
                continue
            removes = action == "delete" or entry.erase == SHRED
            if not removes and entry.erase == KEEP:
                continue
            where = entry.age < now - timedelta(days=keep_days)
            if not removes:
                where = and_(where, _still_personal(entry.table))
            done[entity] = 0
            while keys := _primary_keys(entry.table, where, limit=chunk):
                doomed = _files_of(entry, keys)
                if removes:
                    db.session.execute(delete(entry.table).where(_pk_in(entry.table, keys)))
                else:
                    _erase_rows(entry, keys)
                audit.record(
                    "gdpr.retention",
                    entity=entity,
                    details={"action": "delete" if removes else "erase", "rows": len(keys)},
                )
                db.session.commit()
                _delete_files(doomed)
                done[entity] += len(keys)
        return done


def _details(details: dict[str, Any], *, files: int | None) -> dict[str, Any]:
    return details if files is None else {**details, "files": files}


def person_fingerprint(ref: PersonRef) -> str:
    """Names the person in the audit log without their data: the same person gives the
    same fingerprint within a tenant, and nobody without the tenant's key can test a
    guess."""
    return crypto.keyed_hash("gdpr:person:" + ref.canonical())[:16]


def _primary_keys(
    table: Table, where: ColumnElement[bool], limit: int | None = None
) -> list[tuple[Any, ...]]:
    pk = list(table.primary_key.columns)
    query = select(*pk).where(where).order_by(*pk)
    if limit is not None:
        query = query.limit(limit)
    return [tuple(row) for row in db.session.execute(query)]


def _pk_in(table: Table, keys: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    return tuple_(*table.primary_key.columns).in_(keys)


def _rows_with_files(
    entry: Entry, where: ColumnElement[bool]
) -> Iterable[tuple[Mapping[str, Any], PersonalFile]]:
    if entry.files is None:
        return
    pk = list(entry.table.primary_key.columns)
    for row in db.session.execute(select(entry.table).where(where).order_by(*pk)).mappings():
        for found in entry.files(row):
            yield row, found


def _exported_files(entry: Entry, where: ColumnElement[bool]) -> list[dict[str, Any]]:
    """The files of the person's rows, as the export carries them (base64)."""
    exported = []
    for row, found in _rows_with_files(entry, where):
        pk = {c.name: audit.jsonable(row[c.name]) for c in entry.table.primary_key.columns}
        try:
            content: bytes | None = found.path.read_bytes()
        except FileNotFoundError:
            # The row outlived its file: say so rather than fail the whole export.
            log.warning("gdpr export: a file of %s row %s is missing", entry.name, pk)
            content = None
        exported.append(
            {
                "table": entry.name,
                "row": pk,
                "name": found.name,
                "size": None if content is None else len(content),
                "content_base64": None if content is None else base64.b64encode(content).decode(),
            }
        )
    return exported


def _files_of(entry: Entry, keys: list[tuple[Any, ...]]) -> list[PersonalFile]:
    if entry.files is None or not keys:
        return []
    return [found for _, found in _rows_with_files(entry, _pk_in(entry.table, keys))]


def _delete_files(files: Iterable[PersonalFile]) -> None:
    """After the commit that erased their rows: a file whose row is gone is nobody's.
    A failure is logged (the file name, never its content) and does not undo the
    erasure, which is done."""
    for found in files:
        try:
            found.path.unlink(missing_ok=True)
        except OSError:
            log.exception("gdpr: could not delete %s; delete it by hand", found.path)


def _erase_rows(entry: Entry, keys: list[tuple[Any, ...]]) -> int:
    """Delete (shred) or pseudonymise the rows with primary keys `keys`."""
    table = entry.table
    if not keys:
        return 0
    if entry.erase == SHRED:
        db.session.execute(delete(table).where(_pk_in(table, keys)))
        return len(keys)
    pk = list(table.primary_key.columns)
    tagged = tagged_columns(table)
    cleared = [c for c in table.columns if c.info.get(BLIND_INDEX_OF)]
    targets = [column for column, _ in tagged] + cleared + [table.c[n] for n in entry.erase_also]
    statement = (
        update(table)
        .where(and_(*(column == bindparam(f"pk_{i}") for i, column in enumerate(pk))))
        .values({c.name: bindparam(f"v_{c.name}", type_=c.type) for c in targets})
    )
    params = []
    for key in keys:
        row = {f"pk_{i}": value for i, value in enumerate(key)}
        for column, tag in tagged:
            pseudonym = _pseudonym(table, key, tag.kind) if _pseudonymised(column, tag) else None
            row[f"v_{column.name}"] = pseudonym
        row.update({f"v_{column.name}": None for column in cleared})
        row.update({f"v_{name}": value for name, value in entry.erase_also.items()})
        params.append(row)
    db.session.execute(statement, params)
    return len(keys)


def _still_personal(table: Table) -> ColumnElement[bool]:
    """Rows that still hold personal data (not yet erased), as far as SQL can tell:
    an encrypted pseudonym cannot be recognised, so such rows always qualify."""
    conditions: list[ColumnElement[bool]] = []
    for column, tag in tagged_columns(table):
        if not _pseudonymised(column, tag):
            conditions.append(column.is_not(None))
        elif not isinstance(column.type, EncryptedString):
            conditions.append(~column.startswith(ERASED_PREFIX, autoescape=True))
    return or_(*conditions) if conditions else true()


# --- The default registry and its operations ----------------------------------------------

registry = Registry()


def register(model: Any, **how: Any) -> None:
    """`Registry.register` on the application's registry."""
    registry.register(model, **how)


def export(ref: PersonRef, *, user: Any = None) -> dict[str, Any]:
    return registry.export(ref, user=user)


def erase(ref: PersonRef, *, user: Any = None) -> dict[str, int]:
    return registry.erase(ref, user=user)


def set_policy(entity: str, keep_days: int, action: str, *, user: Any = None) -> RetentionPolicy:
    return registry.set_policy(entity, keep_days, action, user=user)


@periodic("gdpr.retention", every=24 * 3600)
def retention_job(ctx: JobContext) -> dict[str, Any]:
    """Daily, per tenant: apply the tenant's retention policies."""
    return {"rows": registry.apply_retention()}


# --- Kernel tables ------------------------------------------------------------------------


def _user_rows(ref: PersonRef) -> ColumnElement[bool] | None:
    conditions = []
    if ref.user_id is not None:
        conditions.append(User.id == ref.user_id)
    if ref.email:
        conditions.append(func.lower(User.email) == ref.email.strip().lower())
    return or_(*conditions) if conditions else None


# A staff or portal account is kept (the audit log names users by id) but can no longer
# sign in: deactivated, without its password and second-factor secrets. (Recovery codes
# only ever follow a password, so they are left; their column type cannot be cached.)
register(
    User,
    subject=_user_rows,
    erase=PSEUDONYMISE,
    erase_also={
        "active": False,
        "password": None,
        "tf_primary_method": None,
        "tf_totp_secret": None,
        "us_totp_secrets": None,
    },
)
