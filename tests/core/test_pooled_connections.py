"""The pool hands out only connections that look alive, judged by their socket, not by a
ping (core/db.py, check_connections_on_checkout): one the server ended while it sat in
the pool is replaced without the request seeing an error; a healthy one is reused."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy.exc
from flask import Flask
from sqlalchemy import Engine, create_engine, text

from core.db import check_connections_on_checkout, looks_alive
from tenants.admin import admin_engine

PID = text("SELECT pg_backend_pid()")


@pytest.fixture
def one_connection_pool(app: Flask) -> Iterator[Engine]:
    """An engine of the app's database whose pool holds one connection, so every
    checkout is of that connection unless the check replaces it."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(PID).scalar_one()


def _terminate(app: Flask, pid: int) -> None:
    with admin_engine(app).connect() as admin:
        # The timeout makes the call wait until the backend has exited.
        ended = admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        assert ended.scalar_one() is True


def test_a_healthy_pooled_connection_is_handed_out_again(
    app: Flask, one_connection_pool: Engine
) -> None:
    check_connections_on_checkout(one_connection_pool)
    assert _pid(one_connection_pool) == _pid(one_connection_pool)


def test_a_connection_the_server_ended_is_replaced_at_checkout(
    app: Flask, one_connection_pool: Engine
) -> None:
    check_connections_on_checkout(one_connection_pool)
    first = _pid(one_connection_pool)
    _terminate(app, first)
    second = _pid(one_connection_pool)  # no error: a new connection was made
    assert second != first


def test_without_the_check_the_request_gets_the_dead_connection(
    app: Flask, one_connection_pool: Engine
) -> None:
    # What the check is for: the same pool without it hands out the ended connection.
    _terminate(app, _pid(one_connection_pool))
    with pytest.raises(sqlalchemy.exc.OperationalError), one_connection_pool.connect() as conn:
        conn.execute(PID)


def test_a_connection_in_a_transaction_or_closed_does_not_look_alive(app: Flask) -> None:
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as raw:
        assert looks_alive(raw)
        raw.execute("SELECT 1")  # opens a transaction (not autocommit)
        assert not looks_alive(raw)
        raw.rollback()
        assert looks_alive(raw)
    assert not looks_alive(raw)
