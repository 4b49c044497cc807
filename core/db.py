"""Engine, session and the tenant transaction hook (ARCHITECTURE section 3).

Every transaction an ORM session begins starts with one statement that sets the
PostgreSQL role and search_path *transaction-locally*. Because both settings die with
the transaction, a pooled connection, a PgBouncer in transaction mode or a rollback
can never carry one tenant into another's work. The database, not this code, then
refuses any access to another tenant's schema: the application's login role is only a
NOINHERIT member of each tenant role and can read nothing by itself.

The scoping statement travels with the transaction's BEGIN, in one message and one
round trip (`_begin_scoped`), where the driver would otherwise send BEGIN and then the
statement: the same two statements, in the same order, only without a network wait
between them.

The application's connections are `KeepsPreparedConnection`s (`keep_prepared_statements`):
psycopg's, except that rolling back a healthy transaction keeps the statements psycopg
has prepared on the connection, as committing one does. A pooled connection is checked
before it is handed out by looking at its socket, not by a round trip
(`check_connections_on_checkout`).
"""

from __future__ import annotations

import select
from collections.abc import Callable
from contextlib import suppress
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from psycopg import IsolationLevel, pq
from psycopg import sql as pgsql
from sqlalchemy import Engine, MetaData, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction

from core.tenancy import NoTenantError, Tenant, current_tenant

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantSession(FlaskSession):
    """A session bound to at most one tenant for its whole life."""


db = SQLAlchemy(model_class=Base, session_options={"class_": TenantSession})

# One statement, both settings, both local to the transaction (`is_local` = true).
# An empty search_path when there is no tenant makes any unqualified business table
# name fail instead of resolving somewhere unexpected.
_SCOPE_SQL = text("SELECT set_config('role', :role, true), set_config('search_path', :path, true)")


def scope_connection(connection: Connection, tenant: Tenant | None) -> None:
    """Scope the connection's current transaction to `tenant` (or to no tenant).

    Call it first in a transaction: with nothing sent yet, the driver's BEGIN and
    the scoping statement go together (`_begin_scoped`).
    """
    role, path = ("none", "") if tenant is None else (tenant.role, tenant.schema)
    if not _begin_scoped(connection, role, path):
        connection.execute(_SCOPE_SQL, {"role": role, "path": path})


def _begin_scoped(connection: Connection, role: str, path: str) -> bool:
    """BEGIN and the scoping statement in one simple-protocol message, if the
    transaction has not reached the server yet; False (nothing sent) otherwise.

    psycopg would send the BEGIN by itself, one round trip, ahead of the first
    statement; sent here, it is built from the same connection attributes psycopg
    builds its own from (isolation level, read only, deferrable). Any failure, the
    scope's included, is rolled back and the caller runs the ordinary two-step path,
    which raises what it always raised (SQLAlchemy's exception, disconnect handling).
    """
    raw = connection.connection.dbapi_connection
    if (
        not isinstance(raw, psycopg.Connection)
        or raw.autocommit
        or raw.pgconn.transaction_status != pq.TransactionStatus.IDLE
        or raw.pgconn.pipeline_status != pq.PipelineStatus.OFF
    ):
        return False
    command = _scoped_begin_command(raw.isolation_level, raw.read_only, raw.deferrable, role, path)
    try:
        result = raw.pgconn.exec_(command)
    except psycopg.Error:
        return False
    if result.status == pq.ExecStatus.TUPLES_OK and (
        raw.pgconn.transaction_status == pq.TransactionStatus.INTRANS
    ):
        return True
    # If the connection is gone, the ordinary path reports it.
    with suppress(psycopg.Error):
        raw.rollback()
    return False


@lru_cache(maxsize=4096)
def _scoped_begin_command(
    isolation: IsolationLevel | None,
    read_only: bool | None,
    deferrable: bool | None,
    role: str,
    path: str,
) -> bytes:
    """`BEGIN [options]; SELECT set_config(...), set_config(...)` with quoted literals
    (the simple query protocol takes no parameters)."""
    begin = ["BEGIN"]
    if isolation is not None:
        begin.append("ISOLATION LEVEL " + IsolationLevel(isolation).name.replace("_", " "))
    if read_only is not None:
        begin.append("READ ONLY" if read_only else "READ WRITE")
    if deferrable is not None:
        begin.append("DEFERRABLE" if deferrable else "NOT DEFERRABLE")
    scope = pgsql.SQL(
        "SELECT set_config('role', {}, true), set_config('search_path', {}, true)"
    ).format(pgsql.Literal(role), pgsql.Literal(path))
    return f"{' '.join(begin)}; {scope.as_string(None)}".encode()


class KeepsPreparedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose ROLLBACK of a healthy transaction keeps the statements
    psycopg prepared on it.

    psycopg prepares a statement on the server once it has run `prepare_threshold` (5)
    times on a connection, and forgets every one at each ROLLBACK, in case the
    transaction had changed what they refer to. Every request that writes nothing ends
    with a ROLLBACK (Flask-SQLAlchemy's teardown), so no statement of a read was ever
    prepared: PostgreSQL parsed and planned a quote's reach rule (a semi-join over
    customers and agents) afresh on every GET, about 0.3 ms where running the prepared
    plan takes 0.15.

    Keeping them is safe because the server keeps them: prepared statements are not
    transactional, so a ROLLBACK leaves every statement psycopg prepared (successfully;
    a failed PREPARE is never recorded) in place. A changed table invalidates their
    plans on the server, which re-plans them; psycopg itself still forgets them after
    a DROP or ALTER it runs. What stays on psycopg's own path, which forgets them: a
    transaction in error, a pipeline, psycopg's own transaction blocks and two-phase
    commits (attributes read with a default that chooses that path, should a psycopg
    release rename them).
    """

    def rollback(self) -> None:
        pgconn = self.pgconn
        if (
            pgconn.transaction_status == pq.TransactionStatus.INTRANS
            and pgconn.pipeline_status == pq.PipelineStatus.OFF
            and not getattr(self, "_num_transactions", 1)
            and getattr(self, "_tpc", True) is None
        ):
            with self.lock:
                if pgconn.exec_(b"ROLLBACK").status == pq.ExecStatus.COMMAND_OK:
                    return
        # Anything else, a lost connection included, raises as psycopg always has.
        super().rollback()


def keep_prepared_statements(engine: Engine) -> None:
    """Make `engine`'s new connections `KeepsPreparedConnection`s."""

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> psycopg.Connection[Any]:
        return KeepsPreparedConnection.connect(*cargs, **cparams)


def looks_alive(raw: Any) -> bool:
    """Whether idle pooled connection `raw` can be handed out, judged without a round
    trip: open, idle, and with nothing waiting on its socket.

    An idle connection has nothing to read unless the server has written to it
    unasked, and it does that when it ends the session (shutdown, restart,
    pg_terminate_backend, idle_session_timeout: an error message, then EOF), so a
    readable socket means a connection not to use. What no local check sees, a peer
    gone silently (a firewall dropping the flow), a round-trip ping would not see
    quickly either: it would wait for TCP to give up. `pool_recycle` bounds the age of
    such a connection; a query failing on one invalidates the pool (SQLAlchemy's
    disconnect handling) and the next request connects afresh.
    """
    if not isinstance(raw, psycopg.Connection):
        return True  # no way to look; the first statement tells
    pgconn = raw.pgconn
    if (
        raw.closed
        or pgconn.status != pq.ConnStatus.OK
        or pgconn.transaction_status != pq.TransactionStatus.IDLE
    ):
        return False
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable


def check_connections_on_checkout(engine: Engine) -> None:
    """Make `engine`'s pool discard a connection that does not `looks_alive` when it is
    checked out, and hand out another (SQLAlchemy's pessimistic disconnect handling,
    with the ping replaced by a look at the socket: no request pays a round trip for
    it)."""

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if not looks_alive(dbapi_connection):
            raise DisconnectionError("the pooled connection was closed by the server")


@event.listens_for(TenantSession, "after_begin")
def _scope_transaction(
    session: TenantSession, transaction: SessionTransaction, connection: Connection
) -> None:
    tenant = current_tenant()
    bound = session.info.get("tenant_id", _UNBOUND)
    tenant_id = tenant.id if tenant else None
    if bound is _UNBOUND:
        session.info["tenant_id"] = tenant_id
    elif bound != tenant_id:
        raise NoTenantError(
            f"session bound to tenant {bound!r} used for tenant {tenant_id!r}; "
            "one session serves one tenant"
        )
    scope_connection(connection, tenant)


_UNBOUND: Any = object()


def joined_to_callers_transaction(session: Session) -> bool:
    """Whether `session` is bound to a connection whose transaction its caller owns (the
    rolled-back tests, a caller managing its own transaction): its commits only
    release savepoints, and nothing it writes is durable yet."""
    return isinstance(session.bind, Connection) and session.bind.in_transaction()


def commit_made_durable(session: Session) -> bool:
    """In an `after_commit` listener: whether this commit made the session's rows
    durable. It also fires when a SAVEPOINT is released, and in a session joined to a
    caller's transaction; neither has."""
    return not session.in_nested_transaction() and not joined_to_callers_transaction(session)


def committed(work: Callable[[], T], *, keep_loaded: bool = False) -> T:
    """One operation, one transaction: run `work` in db.session and commit, or roll back
    on any exception (nothing half-written). `keep_loaded` commits with
    `commit_keeping_loaded`: for an operation that answers with the rows it just wrote,
    and changed none behind the ORM's back."""
    try:
        result = work()
        if keep_loaded:
            commit_keeping_loaded()
        else:
            db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session holds.

    A commit normally expires every loaded object, so reading one afterwards (to answer
    with the row just written) costs a SELECT. An operation that wrote a row and
    answers with it knows its values are the ones just committed; this keeps them.
    """
    session = db.session()
    previous, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = previous
