"""The tenant scope goes out with the transaction's BEGIN (core/db.py): one message to
the server, the same role and search_path, the connection's isolation level kept; a
transaction already open is scoped by a statement of its own; a scope the database
refuses fails as it always did."""

from __future__ import annotations

import dataclasses
import re
import tempfile

import pytest
import sqlalchemy.exc
from flask import Flask
from psycopg import pq
from sqlalchemy import Engine, text

from core.db import db, scope_connection
from core.tenancy import Tenant

WHO = text("SELECT current_user, current_setting('search_path')")


def _engine(app: Flask) -> Engine:
    with app.app_context():
        return db.engine


def test_the_scope_travels_with_begin_in_one_message(app: Flask, alpha: Tenant) -> None:
    with _engine(app).connect() as conn, tempfile.TemporaryFile("w+") as trace:
        pgconn = conn.connection.dbapi_connection.pgconn  # type: ignore[union-attr]
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        with conn.begin():
            scope_connection(conn, alpha)
            who = tuple(conn.execute(WHO).one())
        pgconn.untrace()
        trace.seek(0)
        sent = [line.split("\t") for line in trace.read().splitlines() if line.startswith("F\t")]
    assert who == (alpha.role, alpha.schema)
    # Nothing before it: BEGIN (with whatever options psycopg would give it, such as
    # the isolation level a pool reset leaves set) and the scope are one first message.
    assert sent[0][2] == "Query"
    assert re.match(r"\"BEGIN( [A-Z ]+)?; SELECT set_config\('role', ", sent[0][3].strip())
    assert not any(fields[2] == "Query" and fields[3].strip('" ') == "BEGIN" for fields in sent)


def test_the_connections_isolation_level_is_kept(app: Flask, alpha: Tenant) -> None:
    connection = _engine(app).connect()
    with connection.execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        scope_connection(conn, alpha)
        assert conn.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
        assert tuple(conn.execute(WHO).one()) == (alpha.role, alpha.schema)


def test_a_transaction_already_open_is_scoped_by_a_statement(app: Flask, alpha: Tenant) -> None:
    with _engine(app).connect() as conn, conn.begin():
        conn.execute(text("SELECT 1"))  # the transaction has reached the server
        scope_connection(conn, alpha)
        assert tuple(conn.execute(WHO).one()) == (alpha.role, alpha.schema)


def test_a_refused_scope_fails_as_before_and_leaves_the_connection_usable(
    app: Flask, alpha: Tenant
) -> None:
    ghost = dataclasses.replace(alpha, role="pb_no_such_role")
    with _engine(app).connect() as conn:
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="pb_no_such_role"), conn.begin():
            scope_connection(conn, ghost)
        with conn.begin():
            scope_connection(conn, alpha)
            assert tuple(conn.execute(WHO).one()) == (alpha.role, alpha.schema)
