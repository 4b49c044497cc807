"""API tokens: grants, rotating refresh tokens, API clients, and who a token stands for.

- Password grant: email + password (+ TOTP code when the user has two-factor set up)
  -> a 15-minute access JWT (core/security/jwt.py) and an opaque refresh token.
- Refresh tokens are random, stored as SHA-256 digests, and belong to a family (one
  per password grant). Refreshing marks the token used and issues the next one in
  the family; presenting a used token again means it was copied, so the whole family
  is revoked.
- Client-credentials grant: an API client (an integration) trades its id and secret
  for an access token whose permissions are the client's scopes.
- Every request re-checks what the token stands for: the user must still be active
  with the same fs_uniquifier ("log out everywhere" rotates it), the client must not
  be revoked. Both are primary/unique-key lookups.

Secrets (refresh tokens, client secrets) carry 256 random bits, so a plain SHA-256
digest is as safe to store as a slow password hash: there is no dictionary to try,
and a fast digest costs nothing per request. Passwords, which people choose, stay
argon2 (Flask-Security).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from flask import current_app
from flask_security import hash_password
from flask_security.twofactor import is_tf_setup
from flask_security.utils import verify_password
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Select,
    String,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, joinedload, load_only, mapped_column

from core import audit, generations
from core.audit import AuditMixin
from core.db import Base, db
from core.jobs import JobContext, periodic
from core.security import accounts, jwt
from core.security.authz import has_permission, own_transaction
from core.security.jwt import InvalidToken
from core.security.models import User, users_generation
from core.security.permissions import ALL_PERMISSIONS, PORTAL
from core.tenancy import require_tenant

CLIENT_ID_PREFIX = "pbc_"
CLIENT_SECRET_PREFIX = "pbs_"
REFRESH_TOKEN_PREFIX = "pbr_"
CLIENT_NAME_MAX = 100
# The portal is for customers' own accounts, whose reach is their own records; an
# integration has no such record, so it cannot be granted the portal.
CLIENT_SCOPES = ALL_PERMISSIONS - {PORTAL}


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The user's fs_uniquifier digest when the family began: rotating it revokes.
    uniquifier_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiClient(AuditMixin, Base):
    """An integration's credentials. `is_active` false means revoked (soft delete)."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(CLIENT_NAME_MAX))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass(frozen=True)
class ClientPrincipal:
    """The current user of a request authenticated with an API client's token.

    Flask-Login and core.security.authz need only these attributes; permissions are
    the token's scopes that the client still holds.
    """

    # Not `id`: that name would pass for a user id wherever a user is expected.
    pk: int
    client_id: str
    name: str
    scopes: frozenset[str]
    is_authenticated: bool = True
    is_active: bool = True
    active: bool = True
    is_anonymous: bool = False

    @property
    def subject(self) -> str:
        return f"client:{self.client_id}"

    @property
    def audit_actor(self) -> str:
        # core.audit names the actor of what this request does by this.
        return self.subject

    def get_id(self) -> str:
        return self.subject

    def has_permission(self, permission: str) -> bool:
        return permission in self.scopes

    def has_role(self, role: object) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class BearerUser:
    """The current user of a request authenticated with a user's access token.

    What every check and operation of an API request reads of its user (id, email,
    role names and permissions), as an immutable value, not a row: each process
    remembers it per user until a user or role of the tenant changes (`_bearer_user`),
    and hands the same value to every request. Nothing attaches it to a session, so a
    request pays no copy into its session for it, and no request can change what the
    next one sees. The few operations that need the row itself (none of the API's
    today) load it by `id`.
    """

    id: int
    email: str
    active: bool
    # `uniquifier_digest` of the user: what a token must carry to stand for them.
    uniquifier_digest: str
    role_names: frozenset[str]
    permissions: frozenset[str]
    is_authenticated: bool = True
    is_anonymous: bool = False

    @classmethod
    def of(cls, user: User) -> BearerUser:
        return cls(
            id=user.id,
            email=user.email,
            active=bool(user.active),
            uniquifier_digest=uniquifier_digest(user),
            role_names=frozenset(role.name for role in user.roles),
            permissions=user.held_permissions(),
        )

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"user:{self.id}"

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def has_role(self, role: object) -> bool:
        return getattr(role, "name", role) in self.role_names


class GrantRejected(Exception):
    """401: the credentials or refresh token cannot be accepted."""


class SecondFactorRequired(GrantRejected):
    """401: the password was right but the account needs a TOTP code."""


class GrantForbidden(Exception):
    """403: the credentials are right but this way in is closed to the account."""


class ClientInvalid(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid API client")
        self.errors = errors


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _user_subject(user: User) -> str:
    return f"user:{user.id}"


# --- password grant -------------------------------------------------------------


_DUMMY_HASH: dict[str, str] = {}


def _spend_password_check(password: str) -> None:
    """Verify against a throwaway hash so an unknown email takes as long as a known one."""
    if "hash" not in _DUMMY_HASH:
        _DUMMY_HASH["hash"] = hash_password(secrets.token_urlsafe(16))
    verify_password(password, _DUMMY_HASH["hash"])


def _failed(user: User, *, second_factor: bool = False) -> None:
    """Count a wrong password or code toward the account's lockout.

    Flask-Security's hook, the one its login form calls: core.security.accounts counts,
    locks at the tenant's threshold and audits `auth.login_failed`, committed on its
    own, so the API and the web share one lockout.
    """
    user.track_failed_authn("code" if second_factor else "password", second_factor)


def _refused(email: str, reason: str, user: User | None) -> None:
    """Audit a refusal that counts toward nothing (no such user, locked, deactivated)."""
    with own_transaction():
        audit.record(
            "auth.login_failed",
            entity="users",
            entity_id=user.id if user is not None else None,
            details={"method": "password", "reason": reason, "email": email, "via": "api"},
        )


def password_grant(email: str, password: str, otp: str | None) -> TokenPair:
    """Access and refresh tokens for a user who proves who they are.

    The rules are the web login's: the same lockout, and a user with a second factor
    must present it. A security key cannot be presented to the API, so its owner, or
    anyone whose role requires two-factor but who has none yet, is refused (403).
    """
    email = email.strip()
    datastore = current_app.extensions["security"].datastore
    user: User | None = datastore.find_user(case_insensitive=True, email=email)
    if user is None:
        _spend_password_check(password)
        _refused(email, "unknown_user", None)
        raise GrantRejected("The email or password is not correct.")
    # Before the password, so a locked account tells nothing about its password.
    if user.is_locked():
        _refused(email, "locked", user)
        raise GrantRejected(accounts.LOCKED_MESSAGE + " An administrator can unlock it.")
    if not user.verify_and_update_password(password):
        _failed(user)
        raise GrantRejected("The email or password is not correct.")
    if not user.active:
        _refused(email, "deactivated", user)
        raise GrantRejected("The email or password is not correct.")
    if is_tf_setup(user):
        if not otp:
            raise SecondFactorRequired("This account needs a one-time code: send it as otp.")
        window = current_app.config["SECURITY_TWO_FACTOR_AUTHENTICATOR_VALIDITY"]
        totp = current_app.extensions["security"].totp_factory
        if not totp.verify_totp(otp, user.tf_totp_secret, user, window=window):
            _failed(user, second_factor=True)
            raise GrantRejected("The one-time code is not correct.")
    elif accounts.mfa_enrolled(user):
        raise GrantForbidden(
            "Your second factor is a security key, which the API cannot use: add an "
            "authenticator app on the web, or use an API client."
        )
    elif accounts.mfa_required(user):
        raise GrantForbidden(
            "Your role requires two-factor authentication: set it up by logging in on the "
            "web first, or use an API client."
        )
    # A successful sign-in ends the failure streak, as on the web.
    user.failed_logins, user.locked_at = 0, None
    pair = _issue_user_tokens(user, family_id=uuid.uuid4(), grant="password")
    db.session.commit()
    return pair


def uniquifier_digest(user: User) -> str:
    # A digest, not the value: a JWT is readable by anyone holding it, and the
    # uniquifier is what Flask-Security's own signed tokens identify a user by.
    return digest(user.fs_uniquifier)


def _issue_user_tokens(user: User, *, family_id: uuid.UUID, grant: str) -> TokenPair:
    tenant = require_tenant()
    subject = _user_subject(user)
    access = jwt.sign(tenant, subject, {"fsu": uniquifier_digest(user)})
    refresh = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
    days = current_app.config["API_REFRESH_TOKEN_DAYS"]
    db.session.add(
        RefreshToken(
            token_hash=digest(refresh),
            family_id=family_id,
            user_id=user.id,
            uniquifier_hash=uniquifier_digest(user),
            expires_at=_now() + timedelta(days=days),
        )
    )
    # The grant authenticated the user: the entry names them as its actor.
    with audit.acting_as(subject):
        audit.record(
            "tokens.issue",
            entity="users",
            entity_id=user.id,
            details={"grant": grant, "subject": subject, "family": str(family_id)},
        )
    return TokenPair(access, jwt.ACCESS_TOKEN_SECONDS, refresh)


# --- refresh tokens ---------------------------------------------------------------


def _refresh_row(raw: str) -> RefreshToken | None:
    # FOR UPDATE: two refreshes racing with one token are serialised, so the second
    # sees it used and is treated as the reuse it is.
    return db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(raw)).with_for_update()
    )


def _revoke_family(family_id: uuid.UUID) -> int:
    result = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=_now())
    )
    return result.rowcount


def refresh(raw: str) -> TokenPair:
    """Rotate: mark `raw` used and issue the next pair of its family."""
    row = _refresh_row(raw)
    if row is None or row.revoked_at is not None:
        raise GrantRejected("The refresh token is not valid.")
    if row.used_at is not None:
        revoked = _revoke_family(row.family_id)
        audit.record(
            "tokens.refresh_reuse",
            entity="users",
            entity_id=row.user_id,
            details={"family": str(row.family_id), "revoked": revoked},
        )
        db.session.commit()
        raise GrantRejected("The refresh token was already used; its family is revoked.")
    if row.expires_at <= _now():
        raise GrantRejected("The refresh token has expired.")
    user = db.session.get(User, row.user_id)
    if user is None or not user.active or uniquifier_digest(user) != row.uniquifier_hash:
        _revoke_family(row.family_id)
        db.session.commit()
        raise GrantRejected("The refresh token is no longer valid.")
    row.used_at = _now()
    pair = _issue_user_tokens(user, family_id=row.family_id, grant="refresh_token")
    db.session.commit()
    return pair


def purge_refresh_tokens() -> int:
    """Delete refresh tokens that can no longer yield anything: expired, or revoked a
    day ago. Used tokens stay until they expire, so a replay is still recognised."""
    now = _now()
    result = db.session.execute(
        delete(RefreshToken).where(
            or_(RefreshToken.expires_at < now, RefreshToken.revoked_at < now - timedelta(days=1))
        )
    )
    return result.rowcount


@periodic("tokens.purge", every=24 * 3600)
def purge_job(ctx: JobContext) -> dict[str, int]:
    """Daily, per tenant: keep the refresh-token table to live tokens (the job runner
    commits the deletion with the job's result)."""
    return {"deleted": purge_refresh_tokens()}


def revoke(raw: str) -> None:
    """Revoke the family of a refresh token. Unknown tokens are ignored (RFC 7009)."""
    row = _refresh_row(raw)
    if row is None:
        return
    revoked = _revoke_family(row.family_id)
    audit.record(
        "tokens.revoke",
        entity="users",
        entity_id=row.user_id,
        details={"family": str(row.family_id), "revoked": revoked},
    )
    db.session.commit()


# --- API clients ------------------------------------------------------------------


def list_clients() -> list[ApiClient]:
    return list(db.session.scalars(select(ApiClient).order_by(ApiClient.created_at.desc())))


def get_client(client_pk: int) -> ApiClient | None:
    return db.session.get(ApiClient, client_pk)


def check_client(name: str, scopes: Iterable[str], granter: Any) -> dict[str, list[str]]:
    """Field errors of a new client; a granter may only delegate what they hold."""
    errors: dict[str, list[str]] = {}
    name = name.strip()
    if not name:
        errors["name"] = ["Give the client a name."]
    elif not name.isprintable():
        errors["name"] = ["Use printable characters only."]
    elif len(name) > CLIENT_NAME_MAX:
        errors["name"] = [f"At most {CLIENT_NAME_MAX} characters."]
    wanted = set(scopes)
    unknown = sorted(wanted - CLIENT_SCOPES)
    not_held = sorted(s for s in wanted & CLIENT_SCOPES if not has_permission(granter, s))
    if not wanted:
        errors["scopes"] = ["Choose at least one permission."]
    elif unknown:
        errors["scopes"] = [f"Not a client permission: {', '.join(unknown)}."]
    elif not_held:
        errors["scopes"] = [f"You can only grant permissions you hold: {', '.join(not_held)}."]
    return errors


def create_client(name: str, scopes: Iterable[str], granter: Any) -> tuple[ApiClient, str]:
    """A new client and its secret, which is returned here once and never stored."""
    scopes = sorted(set(scopes))
    errors = check_client(name, scopes, granter)
    if errors:
        raise ClientInvalid(errors)
    secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(12),
        name=name.strip(),
        secret_hash=digest(secret),
        scopes=scopes,
    )
    db.session.add(client)
    db.session.flush()
    audit.record(
        "clients.create",
        entity="api_clients",
        entity_id=client.id,
        after={"client_id": client.client_id, "name": client.name, "scopes": scopes},
    )
    db.session.commit()
    return client, secret


def revoke_client(client: ApiClient) -> None:
    """Revoke at once: every request re-checks the client, so its tokens stop working."""
    if not client.is_active:
        return
    client.is_active = False
    client.revoked_at = _now()
    audit.record(
        "clients.revoke",
        entity="api_clients",
        entity_id=client.id,
        before={"is_active": True},
        after={"is_active": False},
    )
    db.session.commit()


def _active_client(client_id: str) -> ApiClient | None:
    return db.session.scalar(
        select(ApiClient).where(ApiClient.client_id == client_id, ApiClient.is_active.is_(True))
    )


def client_credentials_grant(
    client_id: str, client_secret: str, scope: str | None = None
) -> TokenPair:
    """An access token for an API client; `scope` may narrow the client's scopes."""
    client = _active_client(client_id)
    if client is None or not hmac.compare_digest(digest(client_secret), client.secret_hash):
        audit.record(
            "auth.login_failed",
            entity="api_clients",
            entity_id=client.id if client else None,
            details={"via": "api", "grant": "client_credentials", "client_id": client_id[:40]},
        )
        db.session.commit()
        raise GrantRejected("The client id or secret is not correct.")
    granted = set(client.scopes)
    if scope is not None:
        wanted = set(scope.split())
        if not wanted or not wanted <= granted:
            raise ClientInvalid({"scope": ["Ask only for scopes the client was granted."]})
        granted = wanted
    subject = f"client:{client.client_id}"
    access = jwt.sign(require_tenant(), subject, {"scope": " ".join(sorted(granted))})
    with audit.acting_as(subject):
        audit.record(
            "tokens.issue",
            entity="api_clients",
            entity_id=client.id,
            details={"grant": "client_credentials", "subject": subject},
        )
    db.session.commit()
    return TokenPair(access, jwt.ACCESS_TOKEN_SECONDS)


# --- bearer authentication ----------------------------------------------------------


@cache
def _user_with_roles() -> Select[tuple[User]]:
    """The user a token names, with its roles, in one statement.

    Only the columns a `BearerUser` holds are read: the checks below, the user's id
    and email, and its roles for the permission checks. The rest of the row (the
    password hash, second-factor secrets and codes, sign-in history) stays in the
    database. Built once, at first use (building it configures the mappers):
    SQLAlchemy then reuses its cache key and compiled form instead of building and
    hashing a new statement on every miss.
    """
    return (
        select(User)
        .options(
            load_only(User.id, User.email, User.active, User.fs_uniquifier),
            joinedload(User.roles),
        )
        .where(User.id == bindparam("user_id"))
    )


def _bearer_user(user_id: int) -> BearerUser | None:
    """The user `user_id` with its roles, as this process last loaded it.

    Every API request asks, and users change rarely: each process remembers the
    `BearerUser` of a user until a user or role of the tenant is written
    (`users_generation`); a miss reads the user and its roles in one statement
    (`_user_with_roles`), in the request's tenant-scoped transaction.
    """

    def load() -> BearerUser | None:
        found = (
            db.session.execute(_user_with_roles(), {"user_id": user_id})
            .unique()
            .scalar_one_or_none()
        )
        return None if found is None else BearerUser.of(found)

    return generations.remembered("bearer users").get(users_generation(), load, user_id)


def principal_for(token: str) -> BearerUser | ClientPrincipal:
    """Who a bearer token stands for on the current tenant's host, checked now."""
    claims = jwt.verify(token, require_tenant())
    kind, _, ident = str(claims["sub"]).partition(":")
    if kind == "user" and ident.isdigit():
        user = _bearer_user(int(ident))
        if user is None or not user.active:
            raise InvalidToken("the user is no longer active")
        if not hmac.compare_digest(str(claims.get("fsu", "")), user.uniquifier_digest):
            raise InvalidToken("the token was revoked")
        return user
    if kind == "client":
        client = _active_client(ident)
        if client is None:
            raise InvalidToken("the client was revoked")
        scopes = frozenset(str(claims.get("scope", "")).split()) & frozenset(client.scopes)
        return ClientPrincipal(client.id, client.client_id, client.name, scopes)
    raise InvalidToken("unknown subject")
