"""Audit columns, and the append-only, hash-chained audit log of each tenant.

- `AuditMixin` gives a business table `created_at/updated_at/created_by/updated_by/
  is_active`; a `before_flush` hook fills the `*_by` columns with `current_actor()`.
- `record(...)` queues one entry on db.session; the entries are inserted when that
  session commits, in its transaction, so they are as durable as the change they
  describe and a rollback drops them. Inserting at commit keeps the chain lock (below)
  held only for the commit itself.
- The database chains the rows: a trigger (migrations/tenant/versions/0002_audit.py)
  locks the one-row `audit_head`, draws the id, stamps the time and computes
  `hash = sha256(canonical text of the row + prev_hash)`. `verify_chain` recomputes
  every hash in Python and names the first broken row. docs/audit.md has the format.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from flask import Flask, after_this_request, current_app, has_app_context, has_request_context
from flask import request as flask_request
from flask_login import current_user, user_logged_out
from flask_security.signals import user_authenticated
from psycopg.types.json import Jsonb
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    FetchedValue,
    Index,
    Text,
    UniqueConstraint,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import jobs, logs
from core.db import Base, TenantSession, db, joined_to_callers_transaction, scope_connection
from core.security.models import User
from core.tenancy import Tenant, require_tenant


class AuditMixin:
    """The who/when columns and soft delete of every business table; `_fill_audit_columns`
    (below) sets the `*_by` columns on flush."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    created_by: Mapped[str | None] = mapped_column(nullable=True)
    updated_by: Mapped[str | None] = mapped_column(nullable=True)
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true", nullable=False)


# --- Tables -----------------------------------------------------------------------


class AuditEntry(Base):
    """One row of `audit_log`. The trigger sets id, at, prev_hash and hash; whatever the
    application passes for them is overwritten."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("prev_hash"),
        CheckConstraint("changes IS NULL OR jsonb_typeof(changes) = 'object'", "changes_object"),
        CheckConstraint("details IS NULL OR jsonb_typeof(details) = 'object'", "details_object"),
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_entity_id", "entity", "entity_id", "id"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, server_default=FetchedValue()
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=FetchedValue())
    actor: Mapped[str] = mapped_column(Text)
    actor_ip: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    entity: Mapped[str | None] = mapped_column(Text)
    entity_id: Mapped[str | None] = mapped_column(Text)
    # none_as_null: an absent diff is SQL NULL, not the JSON value null.
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    prev_hash: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    hash: Mapped[str] = mapped_column(Text, server_default=FetchedValue())


class AuditHead(Base):
    """The chain's last link, one row; the trigger moves it with every append."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("singleton", "singleton"),)

    singleton: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default="true")
    last_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    last_hash: Mapped[str] = mapped_column(Text)
    entries: Mapped[int] = mapped_column(BigInteger, server_default="0")


# --- Who is acting ------------------------------------------------------------------

SYSTEM = "system"
ANONYMOUS = "anonymous"

_acting_as: ContextVar[str | None] = ContextVar("powerbuyer_audit_actor", default=None)


@contextmanager
def acting_as(actor: str) -> Iterator[str]:
    """Attribute what happens inside to `actor` (a CLI command: "cli:rotate-keys")."""
    token = _acting_as.set(actor)
    try:
        yield actor
    finally:
        _acting_as.reset(token)


def current_actor() -> str:
    """`user:<id>` for a signed-in user, `job:<id>` inside a job, `anonymous` for a
    request with no user, `system` otherwise (CLI, scheduler).

    User ids, not emails: an email can change or be erased, an id names the same
    person for the life of the log. A principal that is not a user (an API client)
    names itself with an `audit_actor` attribute.
    """
    forced = _acting_as.get()
    if forced:
        return forced
    job_id = jobs.running_job.get()
    if job_id is not None:
        return f"job:{job_id}"
    if has_request_context():
        user = current_user
        if user is not None and getattr(user, "is_authenticated", False):
            return getattr(user, "audit_actor", None) or f"user:{user.id}"
        return ANONYMOUS
    return SYSTEM


def _client_ip() -> str | None:
    # remote_addr is the peer unless ProxyFix (configured for the real number of
    # proxies) rewrote it; trusting X-Forwarded-For here would let clients forge it.
    return flask_request.remote_addr if has_request_context() else None


# --- Masking and diffs --------------------------------------------------------------

MASK = "[masked]"
# A key is masked when it contains one of these (case-insensitive); AUDIT_MASKED_KEYS
# in the config adds more. Over-masking is harmless, leaking a secret is not.
DEFAULT_MASKED_KEYS = frozenset(
    {
        "password",
        "secret",
        "token",
        "national_id",
        "tax_id",
        "bank_account",
        "date_of_birth",
        "recovery_code",
        "uniquifier",
    }
)


def masked_words() -> frozenset[str]:
    extra: Iterable[str] = ()
    if has_app_context():
        extra = current_app.config.get("AUDIT_MASKED_KEYS", ())
    return DEFAULT_MASKED_KEYS | {word.lower() for word in extra}


def pii_columns(entity: str | None) -> frozenset[str]:
    """Keys of `entity`'s columns tagged as personal data (`"pii"` in Column.info).

    `entity` is a table name (`customers`) or a model class name (`Customer`).
    """
    if not entity:
        return frozenset()
    # A model declared later (a plugin's, a test's) adds a table, and so a new key.
    return _pii_columns(entity, len(Base.metadata.tables))


@lru_cache(maxsize=1024)
def _pii_columns(entity: str, tables: int) -> frozenset[str]:
    keys: set[str] = set()
    for mapper in Base.registry.mappers:
        if entity not in (mapper.local_table.name, mapper.class_.__name__):
            continue
        for prop in mapper.column_attrs:
            for column in prop.columns:
                if "pii" in column.info:
                    keys.update((prop.key, column.name))
    table = Base.metadata.tables.get(entity)
    if table is not None:
        keys.update(column.name for column in table.columns if "pii" in column.info)
    return frozenset(keys)


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: Decimal stays exact as a string, times become ISO 8601."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")  # jsonb cannot hold NUL
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(item) for item in value), key=repr)
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


def _hidden(key: str, words: frozenset[str], pii: frozenset[str]) -> bool:
    lowered = key.lower()
    return key in pii or any(word in lowered for word in words)


def mask(value: Any, words: frozenset[str], pii: frozenset[str] = frozenset()) -> Any:
    """Replace the values of sensitive keys, at any depth, by MASK."""
    if isinstance(value, dict):
        return {
            key: MASK if _hidden(key, words, pii) else mask(item, words)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask(item, words) for item in value]
    return value


def diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]] | None:
    """`{key: {"before": b, "after": a}}` for the keys whose values differ; a side is
    left out where the key does not exist there (creation, deletion)."""
    if before is None and after is None:
        return None
    old, new = jsonable(dict(before or {})), jsonable(dict(after or {}))
    changes: dict[str, dict[str, Any]] = {}
    for key in [*old, *(k for k in new if k not in old)]:
        if key in old and key in new and old[key] == new[key]:
            continue
        change = {}
        if key in old:
            change["before"] = old[key]
        if key in new:
            change["after"] = new[key]
        changes[key] = change
    return changes


def masked_diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, entity: str | None
) -> dict[str, dict[str, Any]] | None:
    """`diff` with sensitive values masked: the entry says *that* they changed, not to
    what. Values are compared before masking, so a change is never hidden."""
    changes = diff(before, after)
    if changes is None:
        return None
    words, pii = masked_words(), pii_columns(entity)
    return {
        key: {side: MASK for side in change}
        if _hidden(key, words, pii)
        else {side: mask(value, words) for side, value in change.items()}
        for key, change in changes.items()
    }


def snapshot(obj: Any, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A model instance's column values, for `record(before=..., after=...)`."""
    skip = set(exclude)
    return {
        attr.key: getattr(obj, attr.key)
        for attr in inspect(obj).mapper.column_attrs
        if attr.key not in skip
    }


# --- Recording ----------------------------------------------------------------------

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_PENDING = "powerbuyer.audit.pending"


def record(
    action: str,
    *,
    entity: str | None = None,
    entity_id: str | int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an entry to the current tenant's audit log in db.session's transaction.

    The caller's commit makes it durable (the row is inserted during that commit); a
    rollback discards it. Actor, request id and IP are taken from the context.
    """
    require_tenant()
    if not ACTION_RE.fullmatch(action):
        raise ValueError(f"audit action {action!r} is not dotted lower-case, e.g. 'auth.login'")
    entry = {
        "actor": current_actor(),
        "actor_ip": _client_ip(),
        "request_id": logs.request_id.get(),
        "action": action,
        "entity": entity,
        "entity_id": None if entity_id is None else str(entity_id),
        "changes": masked_diff(before, after, entity),
        "details": mask(jsonable(details), masked_words()) if details else None,
    }
    session = db.session()
    if not session.in_transaction():
        # A transaction to end: its commit inserts the entry, its rollback or close
        # forgets it.
        session.begin()
    session.info.setdefault(_PENDING, []).append(entry)


# The entries of a transaction go in with its COMMIT, in one round trip: one
# simple-protocol message `INSERT ... VALUES (...), ...; COMMIT` sent from the
# connection's commit event, after every flush. psycopg's client-side binding quotes
# the values (ClientCursor: the simple protocol takes no parameters, and only it runs
# two statements in one message). An entry the trigger refuses makes the commit fail,
# as before: the server skips the COMMIT after the failed INSERT, and psycopg raises.
_COLUMNS = "actor, actor_ip, request_id, action, entity, entity_id, changes, details"
_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s)"


@lru_cache(maxsize=64)
def _insert_and_commit(rows: int) -> bytes:
    return f"INSERT INTO audit_log ({_COLUMNS}) VALUES {', '.join([_ROW] * rows)}; COMMIT".encode()


_WITH_COMMIT: weakref.WeakKeyDictionary[Connection, list[dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _row(entry: dict[str, Any]) -> tuple[Any, ...]:
    # none_as_null, as the model's JSONB columns: no diff is SQL NULL, not JSON null.
    return (
        entry["actor"],
        entry["actor_ip"],
        entry["request_id"],
        entry["action"],
        entry["entity"],
        entry["entity_id"],
        None if entry["changes"] is None else Jsonb(entry["changes"]),
        None if entry["details"] is None else Jsonb(entry["details"]),
    )


@event.listens_for(TenantSession, "before_commit")
def _insert_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    # A savepoint's commit, or a session joined to a caller's transaction (tests), is
    # not the COMMIT: the entries go in now, in the transaction.
    if (
        session.in_nested_transaction()
        or joined_to_callers_transaction(session)
        or not isinstance(raw, psycopg.Connection)
    ):
        session.execute(insert(AuditEntry), pending)
        return
    _WITH_COMMIT.setdefault(connection, []).extend(pending)


@event.listens_for(Engine, "commit")
def _insert_with_commit(connection: Connection) -> None:
    pending = _WITH_COMMIT.pop(connection, None)
    if not pending:
        return
    raw = connection.connection.dbapi_connection
    assert isinstance(raw, psycopg.Connection)
    rows = [_row(entry) for entry in pending]
    query = _insert_and_commit(len(rows))
    params = [value for row in rows for value in row]
    try:
        with psycopg.ClientCursor(raw) as cursor:
            cursor.execute(query, params)
    except psycopg.Error as exc:
        # The error names what was sent, as SQLAlchemy's own errors do.
        raise DBAPIError.instance(query.decode(), params, exc, psycopg.Error) from exc


@event.listens_for(Engine, "rollback")
def _forget_with_rollback(connection: Connection) -> None:
    _WITH_COMMIT.pop(connection, None)


@event.listens_for(TenantSession, "after_transaction_end")
def _forget_pending(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


@event.listens_for(TenantSession, "before_flush")
def _fill_audit_columns(session: Session, flush_context: Any, instances: Any) -> None:
    actor: str | None = None
    for obj in session.new:
        if isinstance(obj, AuditMixin):
            actor = actor or current_actor()
            obj.created_by = obj.created_by or actor
            obj.updated_by = obj.updated_by or actor
    for obj in session.dirty:
        # updated_at follows from the column's onupdate, in the same UPDATE.
        if isinstance(obj, AuditMixin) and session.is_modified(obj, include_collections=False):
            actor = actor or current_actor()
            obj.updated_by = actor


# --- Login and logout ---------------------------------------------------------------


def _commit_after_request() -> None:
    """Commit db.session once the view has finished, unless the request failed."""

    def commit(response: Any) -> Any:
        if response.status_code < 400:
            db.session.commit()
        return response

    after_this_request(commit)


def _on_login(sender: Flask, user: Any, authn_via: list[str] | None = None, **_: Any) -> None:
    record("auth.login", entity="users", entity_id=user.id, details={"via": authn_via or []})
    _commit_after_request()


def _on_logout(sender: Flask, user: Any, **_: Any) -> None:
    # By now current_user is anonymous: the entry names the user who left.
    if user is None or not getattr(user, "is_authenticated", False):
        return
    with acting_as(f"user:{user.id}"):
        record("auth.logout", entity="users", entity_id=user.id)
    _commit_after_request()


# --- Reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryFilter:
    """What the audit screen and export select. `until` is exclusive."""

    actor: str | None = None
    entity: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def actor_for(who: str) -> str:
    """What a person types into the user filter -> an actor: an email becomes
    `user:<id>`; anything else (`job:…`, `system`, `user:7`) is taken as it is."""
    who = who.strip()
    if "@" not in who:
        return who
    user_id = db.session.scalar(select(User.id).where(func.lower(User.email) == who.lower()))
    return f"user:{user_id}" if user_id is not None else "user:none"


def actor_labels(actors: Iterable[str]) -> dict[str, str]:
    """`user:<id>` -> the user's email, for display; other actors name themselves."""
    ids = {int(a[5:]) for a in actors if a.startswith("user:") and a[5:].isdigit()}
    labels = {a: a for a in actors}
    if ids:
        for user_id, email in db.session.execute(
            select(User.id, User.email).where(User.id.in_(ids))
        ):
            labels[f"user:{user_id}"] = email
    return labels


def _where(filters: EntryFilter) -> list[Any]:
    clauses: list[Any] = []
    if filters.actor:
        clauses.append(AuditEntry.actor == actor_for(filters.actor))
    if filters.entity:
        clauses.append(AuditEntry.entity == filters.entity)
    if filters.action:
        # "auth" finds auth.login, auth.logout, ...; "auth.login" finds exactly that.
        prefix = filters.action.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        clauses.append(
            or_(AuditEntry.action == filters.action, AuditEntry.action.like(prefix + ".%"))
        )
    if filters.since:
        clauses.append(AuditEntry.at >= filters.since)
    if filters.until:
        clauses.append(AuditEntry.at < filters.until)
    return clauses


def find_entries(
    filters: EntryFilter, *, before: int | None = None, limit: int = 50
) -> list[AuditEntry]:
    """The newest `limit` entries matching `filters` with an id below `before`
    (keyset pagination: pass the last id of a page to get the next)."""
    require_tenant()
    query = select(AuditEntry).where(*_where(filters)).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list(db.session.scalars(query))


def entry_pages(filters: EntryFilter, *, size: int = 1000) -> Iterator[list[AuditEntry]]:
    """Every matching entry, newest first, a page at a time (for exports)."""
    before: int | None = None
    while True:
        page = find_entries(filters, before=before, limit=size)
        if page:
            yield page
        if len(page) < size:
            return
        before = page[-1].id
        for entry in page:  # keep memory flat on long exports
            db.session.expunge(entry)


# --- Verifying the chain ------------------------------------------------------------

GENESIS = "0" * 64
FORMAT = "pb-audit-v1"


def canonical_text(
    *,
    id: int,
    at: datetime,
    actor: str,
    actor_ip: str | None,
    request_id: str | None,
    action: str,
    entity: str | None,
    entity_id: str | None,
    changes_text: str | None,
    details_text: str | None,
    prev_hash: str,
) -> str:
    """What the trigger hashes: PostgreSQL's `json_build_array(...)::text` of these
    values, which `json.dumps(..., ensure_ascii=False)` reproduces byte for byte.
    `changes_text`/`details_text` are the stored jsonb rendered by PostgreSQL
    (`changes::text`), so JSON number formatting never has to be re-derived."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = [FORMAT, str(id), stamp, actor, actor_ip, request_id, action, entity, entity_id]
    return json.dumps([*fields, changes_text, details_text, prev_hash], ensure_ascii=False)


def row_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical_text(**fields).encode("utf-8")).hexdigest()


_ROWS_SQL = text(
    "SELECT id, at, actor, actor_ip, request_id, action, entity, entity_id, "
    "changes::text AS changes_text, details::text AS details_text, prev_hash, hash "
    "FROM audit_log ORDER BY id"
)


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_id: int
    head_hash: str
    broken_id: int | None = None
    problem: str | None = None  # "hash mismatch" | "prev_hash mismatch" | "missing row"
    detail: str = ""

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_chain(conn: Connection, anchors: Mapping[int, str] | None = None) -> ChainReport:
    """Walk the log of the tenant `conn` is scoped to, oldest first, and report the
    first broken row. `anchors` ({id: hash}, kept off-box) must all be found as given.

    Run it in one REPEATABLE READ transaction, so the rows and the head are one
    snapshot even while others append.
    """
    head = conn.execute(text("SELECT last_id, last_hash, entries FROM audit_head")).one_or_none()
    if head is None:
        return ChainReport(0, 0, GENESIS, 0, "missing row", "audit_head has no row")
    pending = dict(anchors or {})

    def broken(count: int, row_id: int | None, problem: str, detail: str) -> ChainReport:
        return ChainReport(count, head.last_id, head.last_hash, row_id, problem, detail)

    count, prev_id, prev_hash = 0, None, GENESIS
    for row in conn.execution_options(yield_per=1000).execute(_ROWS_SQL):
        count += 1
        fields = row._asdict()
        stored = fields.pop("hash")
        if row_hash(**fields) != stored:
            return broken(count, row.id, "hash mismatch", "its content does not match its hash")
        if row.prev_hash != prev_hash:
            return broken(count, row.id, *_link_problem(conn, row.prev_hash, prev_id))
        expected = pending.pop(row.id, None)
        if expected is not None and expected != stored:
            return broken(count, row.id, "hash mismatch", f"the anchor says {expected}")
        prev_id, prev_hash = row.id, stored
    if pending:
        missing = min(pending)
        return broken(count, missing, "missing row", "an anchored row is not in the log")
    if prev_hash != head.last_hash or count != head.entries:
        return broken(
            count,
            head.last_id,
            "missing row",
            f"the head records {head.entries} entries ending at id {head.last_id}, "
            f"the log has {count} ending at id {prev_id or '-'}",
        )
    return ChainReport(count, head.last_id, head.last_hash)


def _link_problem(conn: Connection, prev_hash: str, prev_id: int | None) -> tuple[str, str]:
    after = f"row {prev_id}" if prev_id is not None else "the start of the chain"
    target = conn.scalar(text("SELECT id FROM audit_log WHERE hash = :h"), {"h": prev_hash})
    if target is None:
        return "missing row", f"the row it follows is gone (the previous row present is {after})"
    return "prev_hash mismatch", f"it follows row {target}, not {after}"


def verify_tenant(
    engine: Engine, tenant: Tenant, anchors: Mapping[int, str] | None = None
) -> ChainReport:
    """`verify_chain` for `tenant`, in one REPEATABLE READ snapshot of its own."""
    repeatable = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with repeatable as conn, conn.begin():
        scope_connection(conn, tenant)
        return verify_chain(conn, anchors)


def init_app(app: Flask) -> None:
    from core.audit_cli import audit_cli

    user_authenticated.connect(_on_login, app)
    user_logged_out.connect(_on_logout, app)
    app.cli.add_command(audit_cli)
