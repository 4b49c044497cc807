"""Session cookies valid on one tenant's host only, and a server-side session registry.

Cookies are host-only (no Domain attribute), so a browser never sends A's cookie to
B. A cookie copied by hand would still carry a valid signature, so the signing salt
includes the host: on another tenant's host the signature does not verify and the
session starts empty. (The session is opened before tenant resolution runs, so the
host, which names the tenant, is what the salt can use.)

A signed cookie alone cannot be revoked: a copy stays valid after logout. So every
login draws a fresh random session id, kept in the cookie and registered in Redis
under the tenant's key, and a signed-in request whose id is not registered (logged
out, timed out, "logged out everywhere") is treated as signed out:

- `pb:t:<slug>:session:<sid>` holds the user's fs_uniquifier and the absolute
  deadline; its TTL is the idle timeout, renewed by each request (GETEX).
- `pb:t:<slug>:user-sessions:<fs_uniquifier>` is the set of that user's ids, so all
  of them can be revoked at once.

The timeouts come from tenant settings when the session starts; a changed setting
applies to sessions started after it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from flask import Flask, Request, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from redis import Redis

from core import settings
from core.tenancy import current_tenant, tenant_key

SID = "_pb_sid"
IDLE = "_pb_idle"
# Flask-Login's key for the signed-in user (Flask-Security stores fs_uniquifier there).
USER_ID = "_user_id"
MAX_ABSOLUTE_SECONDS = 30 * 24 * 3600


class TenantSessionInterface(SecureCookieSessionInterface):
    # Flask signs with HMAC-SHA1 by default; SHA-256 is the approved choice (ASVS 11).
    digest_method = staticmethod(hashlib.sha256)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Without a cookie the session starts empty, as Flask's would, but without first
        # building the serializer it would not use (most API calls carry no cookie).
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        return URLSafeTimedSerializer(
            app.secret_key,
            salt=f"{self.salt}:{request.host.lower()}",
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )


def _redis() -> Redis:
    return current_app.extensions["redis"]


def _session_key(sid: str) -> str:
    return tenant_key("session", sid)


def _user_key(uniquifier: str) -> str:
    return tenant_key("user-sessions", uniquifier)


def start(uniquifier: str) -> str:
    """Register a new session for the user in the cookie session and Redis (at login)."""
    end()
    sid = secrets.token_urlsafe(32)
    idle = int(settings.get("session_idle_minutes")) * 60
    absolute = int(settings.get("session_absolute_hours")) * 3600
    record = json.dumps({"user": uniquifier, "expires": time.time() + absolute})
    pipe = _redis().pipeline()
    pipe.set(_session_key(sid), record, ex=idle)
    pipe.sadd(_user_key(uniquifier), sid)
    # As long as the longest session any setting allows, so the set outlives every id
    # in it (ids that timed out are only stale members, skipped on revoking).
    pipe.expire(_user_key(uniquifier), MAX_ABSOLUTE_SECONDS)
    pipe.execute()
    session[SID] = sid
    session[IDLE] = idle
    return sid


def end() -> None:
    """Forget this cookie's session (at logout, or before a new one starts)."""
    sid = session.pop(SID, None)
    session.pop(IDLE, None)
    if sid and current_tenant() is not None:
        raw = _redis().getdel(_session_key(sid))
        if raw:
            _redis().srem(_user_key(json.loads(raw)["user"]), sid)


def is_valid() -> bool:
    """Whether this cookie's signed-in session is registered and within its timeouts;
    renews the idle timeout when it is."""
    sid, idle, user = session.get(SID), session.get(IDLE), session.get(USER_ID)
    if not sid or not idle or not user:
        return False
    raw = _redis().getex(_session_key(sid), ex=int(idle))
    if raw is None:
        return False
    record: dict[str, Any] = json.loads(raw)
    if record["user"] != user:
        return False
    if time.time() >= record["expires"]:
        end()
        return False
    return True


def revoke_all(uniquifier: str) -> int:
    """End every registered session of the user (log out everywhere, deactivation)."""
    redis = _redis()
    sids = [
        s.decode() if isinstance(s, bytes) else s for s in redis.smembers(_user_key(uniquifier))
    ]
    pipe = redis.pipeline()
    for sid in sids:
        pipe.delete(_session_key(sid))
    pipe.delete(_user_key(uniquifier))
    pipe.execute()
    return len(sids)


def active_count(uniquifier: str) -> int:
    """How many of the user's sessions are still registered (for the account screen)."""
    redis = _redis()
    sids = redis.smembers(_user_key(uniquifier))
    if not sids:
        return 0
    keys = [_session_key(s.decode() if isinstance(s, bytes) else s) for s in sids]
    return int(redis.exists(*keys))
