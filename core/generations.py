"""Generations: counters in Redis that tell every process when something it remembers
has changed (the tenant registry, a tenant's settings, its products).

Some reads are the same on almost every request and change a few times a year: which
tenant a host names, a tenant's settings, the product versions it sells. Each process
remembers them (`Remembered`), and whoever changes one bumps its generation, a
counter in Redis (`changed`, or `changed_on_commit` from inside a transaction). A
process learns of a bump without asking Redis on every request: Redis pushes it
(`Watch`, client-side-caching invalidation); while that channel is down, each read asks
Redis for the counter (one GET) instead; with no Redis at all nothing is remembered.

The order is what makes it safe: a writer bumps after its transaction commits, and a
reader takes the generation before it loads. A read racing a write then either loads
the new rows, or keeps the old ones under a generation that is already stale. A
process's own changes also clear its memory at once, so it never reads its own write
late. A time limit is the safety net for a write that forgot to bump.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import Any, Generic, TypeVar

from flask import current_app, has_app_context
from redis import ConnectionPool, Redis
from redis.connection import Connection
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.db import TenantSession, commit_made_durable
from core.tenancy import platform_key

log = logging.getLogger(__name__)

PREFIX = platform_key("gen") + ":"
CACHE_SECONDS = 60.0
_PENDING = "pb_generations_pending"

T = TypeVar("T")


def key(name: str) -> str:
    """The Redis key of generation `name` (e.g. "registry", "settings:12")."""
    return PREFIX + name


# Every Remembered of this process, so a change made here clears them directly (also
# from a script with no app context); other processes hear of it through Redis.
_instances: weakref.WeakSet[Remembered] = weakref.WeakSet()


def changed(name: str) -> None:
    """Call after committing a change of `name`: every process forgets what it
    remembers of it."""
    for instance in list(_instances):
        instance.forget(name)
    if not has_app_context():
        return
    try:
        current_app.extensions["redis"].incr(key(name))
    except RedisError:
        log.exception("could not publish a change of %s; processes notice it late", name)


def changed_on_commit(session: Session, name: str) -> None:
    """`changed(name)` once `session`'s transaction commits; nothing if it rolls back.
    This process forgets at once, so its own next read (this transaction's included)
    loads again."""
    for instance in list(_instances):
        instance.forget(name)
    pending = session.info.setdefault(_PENDING, set())
    pending.add(name)


@event.listens_for(TenantSession, "after_commit")
def _publish_after_commit(session: Session) -> None:
    if not commit_made_durable(session):
        return
    for name in sorted(session.info.pop(_PENDING, ())):
        changed(name)


@event.listens_for(TenantSession, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: object) -> None:
    if getattr(transaction, "parent", None) is None:
        session.info.pop(_PENDING, None)


# (models, name of their generation): see `track`.
_TRACKED: list[tuple[tuple[type, ...], Callable[[], str]]] = []


def track(models: tuple[type, ...], name: Callable[[], str]) -> None:
    """Publish a change of generation `name()` whenever a transaction that wrote a row
    of one of `models` through the ORM commits, whichever operation wrote it."""
    _TRACKED.append((models, name))


@event.listens_for(TenantSession, "after_flush")
def _note_tracked_writes(session: Session, flush_context: object) -> None:
    # After a flush the session still lists what it wrote as new, dirty or deleted.
    if not _TRACKED:
        return
    written = (*session.new, *session.dirty, *session.deleted)
    if not written:
        return
    for models, name in _TRACKED:
        if any(isinstance(obj, models) for obj in written):
            changed_on_commit(session, name())


def remembered(kind: str) -> Remembered[Any]:
    """The current app's `Remembered` of `kind`: one per app, since two apps of one
    process (tests, tools) may serve different databases with the same tenant ids."""
    store = current_app.extensions.setdefault("generations", {})
    found = store.get(kind)
    if found is None:
        found = store.setdefault(kind, Remembered())
    return found


def current(name: str) -> Hashable | None:
    """A value that differs once generation `name` has changed; None when Redis cannot
    tell (then nothing may be remembered)."""
    redis = current_app.extensions["redis"]
    watched = Watch.of(redis).generation(key(name))
    if watched is not None:
        return watched
    try:
        value = redis.get(key(name))
    except RedisError:
        return None
    return ("counter", int(value or 0))


class Remembered(Generic[T]):
    """Values by generation name (and part), each kept until that generation changes
    (or `seconds` pass).

    `get(name, load)` answers the remembered value or calls `load()` and remembers its
    result; `get(name, load, part)` keeps one value per part under one generation
    (each user of a tenant, say). Values are shared by every request of the process:
    they must never be changed, and never be ORM objects attached to a session.
    """

    def __init__(self, seconds: float = CACHE_SECONDS, limit: int = 10_000) -> None:
        self._seconds = seconds
        self._limit = limit
        # (name, part) -> (valid until, generation, value); whole tuples are swapped, so
        # threads never see half an entry.
        self._entries: dict[tuple[str, Hashable], tuple[float, Hashable, T]] = {}
        _instances.add(self)

    def forget(self, name: str | None = None) -> None:
        if name is None:
            self._entries = {}
        else:
            self._entries = {k: v for k, v in self._entries.items() if k[0] != name}

    def get(
        self,
        name: str,
        load: Callable[[], T],
        part: Hashable = None,
        keep: Callable[[T], bool] | None = None,
    ) -> T:
        """The value of `name` (and `part`), loaded if not remembered or stale; a loaded
        value `keep` refuses is answered but not remembered."""
        now = time.monotonic()
        # Read before loading: a change made while it loads then invalidates the result.
        generation = current(name)
        entry = self._entries.get((name, part))
        fresh = entry is not None and entry[0] > now and entry[1] == generation
        if generation is not None and fresh:
            return entry[2]  # type: ignore[index]
        value = load()
        if generation is None or (keep is not None and not keep(value)):
            self._entries.pop((name, part), None)
        else:
            if len(self._entries) >= self._limit:
                self._entries = {}
            self._entries[(name, part)] = (now + self._seconds, generation, value)
        return value


_POOL_INTERNALS = ("maint_notifications", "orig_", "himport")


class Watch:
    """Redis tells this process when a generation changes, so no request has to ask.

    One RESP2 connection per process and Redis server, opened at first use, with
    `CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX <PREFIX>` and subscribed to
    `__redis__:invalidate`: every write of a generation key, by any client (`changed()`,
    `INCR` by hand), sends it an invalidation message naming the key. Redis writes that
    message out in the same event-loop pass as the writer's reply, so a request that
    starts after a change was published finds it waiting on the socket (on loopback,
    3,000 writes in a row were each seen by the next poll): `generation()` drains the
    socket without blocking (a poll, no round trip) and counts what arrived, per key.

    A generation is (connection number, flushes, messages counted for the key): a new
    connection starts a new number, so nothing remembered before an outage, when
    messages may have been lost, is trusted after it; a FLUSHALL (a message naming no
    key) changes every generation. `generation()` is None, and callers fall back to a
    GET per read, while the connection is down (a reconnection is tried at most every
    RETRY_SECONDS) or when the server refuses tracking (Redis before 6). A PING every
    PING_SECONDS that goes unanswered for as long counts as a dead connection, so even
    a connection that dies silently is noticed within two intervals. Tracking ignores
    the database number: a bump of the same key in another database of the server
    only costs this process a re-read.
    """

    RETRY_SECONDS = 1.0
    PING_SECONDS = 1.0
    CHANNEL = b"__redis__:invalidate"

    _watches: dict[tuple[object, ...], Watch] = {}
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
        self._flushes = 0
        self._counts: dict[bytes, int] = {}
        self._retry_at = 0.0
        self._ping_sent: float | None = None
        self._ping_due = 0.0
        self._warned = False

    @classmethod
    def of(cls, redis: Redis) -> Watch:
        """The watch of `redis`'s server, shared by every client of this process."""
        pool = redis.connection_pool
        kwargs = pool.connection_kwargs
        ident = tuple(
            [pool.connection_class]
            + [kwargs.get(k) for k in ("host", "port", "path", "db", "username")]
        )
        watch = cls._watches.get(ident)
        if watch is None:
            with cls._watches_lock:
                watch = cls._watches.setdefault(ident, cls(pool))
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

    def generation(self, name: str) -> tuple[str, int, int, int] | None:
        """The generation of Redis key `name` (a key under PREFIX), None while down."""
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
                    log.warning("generations are read per request: %r", exc)
                self._drop(now)
                return None
            return ("watch", self._number, self._flushes, self._counts.get(name.encode(), 0))

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
        tracking = ("ON", "REDIRECT", self.client_id, "BCAST", "PREFIX", PREFIX)
        conn.send_command("CLIENT", "TRACKING", *tracking)
        if conn.read_response() not in (b"OK", "OK"):
            raise ValueError("CLIENT TRACKING refused")
        conn.send_command("SUBSCRIBE", self.CHANNEL)
        conn.read_response()
        self._number, self._flushes, self._counts = next(self._connections), 0, {}
        self._ping_sent, self._ping_due = None, now + self.PING_SECONDS

    def _drain(self, now: float) -> None:
        conn = self._conn
        assert conn is not None
        while conn.can_read(timeout=0):
            message = conn.read_response()
            kind = message[0] if isinstance(message, list) and message else None
            if kind in (b"pong", "pong"):
                self._ping_sent = None
            elif kind in (b"message", "message"):
                keys = message[2] if len(message) > 2 else None
                if not isinstance(keys, list):  # FLUSHDB/FLUSHALL: every key changed
                    self._flushes += 1
                    continue
                for name in keys:
                    name = name if isinstance(name, bytes) else str(name).encode()
                    self._counts[name] = self._counts.get(name, 0) + 1
        if self._ping_sent is not None and now - self._ping_sent > self.PING_SECONDS:
            raise ValueError("the generation watch's PING went unanswered")
        if self._ping_sent is None and now >= self._ping_due:
            conn.send_command("PING")
            self._ping_sent, self._ping_due = now, now + self.PING_SECONDS

    def _drop(self, now: float) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.disconnect()
        self._conn, self._retry_at = None, now + self.RETRY_SECONDS
