"""Reading the tenant registry. Uses plain connections, never the ORM session, so a
lookup made before the tenant is known cannot bind the request's session to none."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from contextlib import suppress

from flask import current_app, has_app_context
from redis import ConnectionPool, Redis
from redis.connection import Connection
from redis.exceptions import RedisError
from sqlalchemy import Engine, text

from core.tenancy import Tenant, platform_key

log = logging.getLogger(__name__)

_TENANT_SQL = text(
    """
    SELECT t.id, t.slug, t.name, t.schema_name, t.role_name, t.status,
           coalesce(array_agg(p.plugin) FILTER (WHERE p.plugin IS NOT NULL), '{}') AS plugins
    FROM public.tenants t
    LEFT JOIN public.tenant_plugins p ON p.tenant_id = t.id
    WHERE {where}
    GROUP BY t.id
    ORDER BY t.slug
    """
)


def _tenant(row) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        schema=row.schema_name,
        role=row.role_name,
        status=row.status,
        enabled_plugins=frozenset(row.plugins),
    )


def _query(engine: Engine, where: str, **params: object) -> list[Tenant]:
    sql = text(_TENANT_SQL.text.replace("{where}", where))
    with engine.connect() as conn:
        return [_tenant(row) for row in conn.execute(sql, params)]


def by_slug(engine: Engine, slug: str) -> Tenant | None:
    found = _query(engine, "t.slug = :slug", slug=slug)
    return found[0] if found else None


def by_id(engine: Engine, tenant_id: int) -> Tenant | None:
    found = _query(engine, "t.id = :id", id=tenant_id)
    return found[0] if found else None


def all_tenants(engine: Engine, status: str | None = None) -> list[Tenant]:
    if status:
        return _query(engine, "t.status = :status", status=status)
    return _query(engine, "true")


class Directory:
    """The registry as the kernel sees it (jobs and plugins look tenants up here)."""

    def __init__(self, engine_factory) -> None:
        self._engine_factory = engine_factory

    def get(self, tenant_id: int) -> Tenant | None:
        return by_id(self._engine_factory(), tenant_id)

    def by_slug(self, slug: str) -> Tenant | None:
        return by_slug(self._engine_factory(), slug)

    def active(self) -> list[Tenant]:
        return all_tenants(self._engine_factory(), status="active")


# --- The request path's lookups, remembered until the registry changes ----------------

# Looking a tenant up costs a pooled connection, a ping, a query and a rollback: about a
# quarter of an authenticated API GET (bench/auth.py). So each process remembers the
# tenants it found, and every write to the registry bumps a generation counter in Redis:
# a suspension, deletion or plugin change made by any process takes effect on its next
# request everywhere. A process learns of a bump without asking Redis on every request:
# Redis pushes it (`RegistryWatch`, client-side-caching invalidation); when the push
# channel is down, each request reads the counter (one GET), as before. The time limit
# is only a safety net for a bump that was lost or a write that made none.
GENERATION_KEY = platform_key("registry-generation")
CACHE_SECONDS = 60.0


# Every RecentTenants of this process, so a change made here clears them directly
# (also from a script with no app context); other processes hear of it through Redis.
_instances: weakref.WeakSet[RecentTenants] = weakref.WeakSet()


def changed() -> None:
    """Call after writing the registry: every process forgets what it remembers."""
    for instance in list(_instances):
        instance.forget()
    if not has_app_context():
        return
    try:
        current_app.extensions["redis"].incr(GENERATION_KEY)
    except RedisError:
        log.exception("could not publish a registry change; processes notice it late")


def _shared_generation() -> Hashable | None:
    """A value that differs once the registry generation in Redis has changed; None
    when Redis cannot tell (then nothing may be remembered)."""
    redis = current_app.extensions["redis"]
    watched = RegistryWatch.of(redis).generation()
    if watched is not None:
        return watched
    try:
        value = redis.get(GENERATION_KEY)
    except RedisError:
        return None
    return ("counter", int(value or 0))


_POOL_INTERNALS = ("maint_notifications", "orig_", "himport")


class RegistryWatch:
    """Redis tells this process when GENERATION_KEY changes, so no request has to ask.

    One RESP2 connection per process and Redis server, opened at first use, with
    `CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX <GENERATION_KEY>` and subscribed
    to `__redis__:invalidate`: every write of the key, by any client (`changed()`,
    `INCR` by hand, FLUSHALL), sends it an invalidation message. Redis writes that
    message out in the same event-loop pass as the writer's reply, so a request that
    starts after a change was published finds it waiting on the socket (on loopback,
    3,000 writes in a row were each seen by the next poll): `generation()` drains the
    socket without blocking (a poll, no round trip) and counts what arrived.

    The generation is (connection number, messages counted): a new connection starts a
    new number, so nothing remembered before an outage, when messages may have been
    lost, is trusted after it. `generation()` is None, and callers fall back to a GET
    per request, while the connection is down (a reconnection is tried at most every
    RETRY_SECONDS) or when the server refuses tracking (Redis before 6). A PING every
    PING_SECONDS that goes unanswered for as long counts as a dead connection, so even
    a connection that dies silently is noticed within two intervals. Tracking ignores
    the database number: a bump of the same key in another database of the server
    only costs this process a re-read.
    """

    RETRY_SECONDS = 1.0
    PING_SECONDS = 1.0
    CHANNEL = b"__redis__:invalidate"

    _watches: dict[tuple[object, ...], RegistryWatch] = {}
    _watches_lock = threading.Lock()
    _connections = itertools.count(1)

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: Connection | None = None
        # The server's id of the connection (CLIENT ID), once connected.
        self.client_id: int | None = None
        self._number = 0
        self._count = 0
        self._retry_at = 0.0
        self._ping_sent: float | None = None
        self._ping_due = 0.0
        self._warned = False

    @classmethod
    def of(cls, redis: Redis) -> RegistryWatch:
        """The watch of `redis`'s server, shared by every client of this process."""
        pool = redis.connection_pool
        kwargs = pool.connection_kwargs
        key = tuple(
            [pool.connection_class]
            + [kwargs.get(k) for k in ("host", "port", "path", "db", "username")]
        )
        watch = cls._watches.get(key)
        if watch is None:
            with cls._watches_lock:
                watch = cls._watches.setdefault(key, cls(pool))
        return watch

    @classmethod
    def close_all(cls) -> None:
        """Close this process's watch connections: before stopping a server they are
        connected to, they would count as its users (core.embedded.stop)."""
        with cls._watches_lock:
            watches = list(cls._watches.values())
        for watch in watches:
            with watch._lock:
                watch._drop(time.monotonic())

    def generation(self) -> tuple[str, int, int] | None:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child: the parent's socket is the parent's.
                self._conn, self._pid = None, os.getpid()
            now = time.monotonic()
            try:
                if self._conn is None:
                    if now < self._retry_at:
                        return None
                    self._connect(now)
                self._drain(now)
            except Exception as exc:  # a failing watch costs speed, never correctness
                if self._number == 0 and not self._warned:
                    self._warned = True
                    log.warning("registry changes are read per request: %r", exc)
                self._drop(now)
                return None
            return ("watch", self._number, self._count)

    def _connect(self, now: float) -> None:
        # The pool's own settings (address, credentials, TLS, timeouts), without the
        # per-pool helper objects redis-py adds for the connections it manages.
        kwargs = {
            name: value
            for name, value in self._pool.connection_kwargs.items()
            if not name.startswith(_POOL_INTERNALS)
        }
        kwargs["protocol"] = 2
        conn = self._pool.connection_class(**kwargs)
        self._conn = conn
        conn.connect()
        conn.send_command("CLIENT", "ID")
        self.client_id = int(conn.read_response())
        tracking = ("ON", "REDIRECT", self.client_id, "BCAST", "PREFIX", GENERATION_KEY)
        conn.send_command("CLIENT", "TRACKING", *tracking)
        if conn.read_response() not in (b"OK", "OK"):
            raise ValueError("CLIENT TRACKING refused")
        conn.send_command("SUBSCRIBE", self.CHANNEL)
        conn.read_response()
        self._number, self._count = next(self._connections), 0
        self._ping_sent, self._ping_due = None, now + self.PING_SECONDS

    def _drain(self, now: float) -> None:
        conn = self._conn
        assert conn is not None
        while conn.can_read(timeout=0):
            message = conn.read_response()
            kind = message[0] if isinstance(message, list) and message else None
            if kind in (b"pong", "pong"):
                self._ping_sent = None
            else:
                self._count += 1
        if self._ping_sent is not None and now - self._ping_sent > self.PING_SECONDS:
            raise ValueError("the registry watch's PING went unanswered")
        if self._ping_sent is None and now >= self._ping_due:
            conn.send_command("PING")
            self._ping_sent, self._ping_due = now, now + self.PING_SECONDS

    def _drop(self, now: float) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.disconnect()
        self._conn, self._retry_at = None, now + self.RETRY_SECONDS


class RecentTenants:
    """`by_slug` for host resolution, remembered until the registry changes.

    Only tenants found are remembered, so a tenant created elsewhere is found at its
    first request. Without Redis nothing is remembered: every request reads the registry.
    """

    def __init__(
        self, engine_factory: Callable[[], Engine], seconds: float = CACHE_SECONDS
    ) -> None:
        self._engine_factory = engine_factory
        self._seconds = seconds
        # slug -> (valid until, generation, tenant); whole tuples are swapped, so
        # threads never see half an entry.
        self._entries: dict[str, tuple[float, Hashable, Tenant]] = {}
        _instances.add(self)

    def forget(self) -> None:
        self._entries = {}

    def by_slug(self, slug: str) -> Tenant | None:
        now = time.monotonic()
        # Read before the query: a change made while it runs then invalidates its result.
        generation = _shared_generation()
        entry = self._entries.get(slug)
        if (
            generation is not None
            and entry is not None
            and entry[0] > now
            and entry[1] == generation
        ):
            return entry[2]
        tenant = by_slug(self._engine_factory(), slug)
        if tenant is None or generation is None:
            self._entries.pop(slug, None)
        else:
            self._entries[slug] = (now + self._seconds, generation, tenant)
        return tenant
