"""A ROLLBACK keeps the statements psycopg prepared on the connection (core/db.py,
KeepsPreparedConnection): reads, which end with one, get prepared plans too. A kept
statement is still the current tenant's, under its role; a transaction in error and a
lost connection take psycopg's own path."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from flask import Flask
from sqlalchemy import Engine, text

from core.db import KeepsPreparedConnection, scope_connection
from core.tenancy import Tenant
from tenants.admin import admin_engine

EMAILS = text("SELECT email FROM users ORDER BY email")
PREPARED = text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT email%'")
# psycopg prepares a statement on its sixth run (prepare_threshold 5).
RUNS = 6


def _engine(app: Flask) -> Engine:
    from core.db import db

    with app.app_context():
        return db.engine


def _read(conn: sqlalchemy.Connection, tenant: Tenant) -> list[str]:
    """EMAILS in a transaction of its own for `tenant`, ended by a ROLLBACK."""
    with conn.begin() as transaction:
        scope_connection(conn, tenant)
        emails = list(conn.execute(EMAILS).scalars())
        transaction.rollback()
    return emails


def test_a_read_ended_by_rollback_is_prepared_and_stays_prepared(app: Flask, alpha: Tenant) -> None:
    with _engine(app).connect() as conn:
        assert isinstance(conn.connection.dbapi_connection, KeepsPreparedConnection)
        for _ in range(RUNS + 3):
            _read(conn, alpha)
        # With psycopg's own rollback, which forgets them all, none ever was.
        assert conn.execute(PREPARED).scalar() == 1
        conn.rollback()


def test_a_kept_statement_reads_the_current_tenant_under_its_role(
    app: Flask, alpha: Tenant, beta: Tenant
) -> None:
    with _engine(app).connect() as conn:
        alphas = [_read(conn, alpha) for _ in range(RUNS + 1)][-1]
        betas = _read(conn, beta)
        assert conn.execute(PREPARED).scalar() == 1
        conn.rollback()
        # The same prepared statement, re-planned on the server for beta's search_path.
        assert alphas and betas and not set(alphas) & set(betas)
        # A statement prepared naming alpha's schema is still refused to beta's role.
        qualified = text(f'SELECT email FROM "{alpha.schema}".users')
        for _ in range(RUNS):
            with conn.begin() as transaction:
                scope_connection(conn, alpha)
                conn.execute(qualified).all()
                transaction.rollback()
        denied = pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied")
        with denied, conn.begin():
            scope_connection(conn, beta)
            conn.execute(qualified).all()


def test_a_transaction_in_error_is_rolled_back_by_psycopg_which_forgets(
    app: Flask, alpha: Tenant
) -> None:
    with _engine(app).connect() as conn:
        for _ in range(RUNS):
            _read(conn, alpha)
        with pytest.raises(sqlalchemy.exc.DBAPIError), conn.begin():
            scope_connection(conn, alpha)
            conn.execute(text("SELECT 1 / 0"))
        # Rolled back by psycopg's own path: its cache was cleared with the server's.
        assert conn.execute(PREPARED).scalar() == 0
        conn.rollback()
        assert _read(conn, alpha)


def test_a_lost_connection_raises_on_rollback_as_psycopg_does(app: Flask, alpha: Tenant) -> None:
    with _engine(app).connect() as conn:
        raw = conn.connection.dbapi_connection
        conn.begin()
        scope_connection(conn, alpha)
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin_engine(app).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(psycopg.OperationalError):
            raw.rollback()
        conn.invalidate()
