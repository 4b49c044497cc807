"""Access tokens: short-lived JWTs, signed with a key of their tenant's own.

Each tenant's signing key is derived from SECRET_KEY with HKDF-SHA256, the tenant id
and a key version in the `info` input. Derived keys are never stored or shown, so no
single tenant's key can leak without SECRET_KEY leaking, and there is nothing to back
up or provision. HS256 suffices because the API is the only verifier: no third party
needs a public key.

A token names its key version in the `kid` header. `JWT_KEY_VERSION` signs;
`JWT_RETIRED_KEY_VERSIONS` still verify (for the 15 minutes in-flight tokens live
after a planned rotation). Dropping a version from both kills its tokens at once.

A token is accepted only on its own tenant's host, twice over: another tenant's key
does not verify its signature, and the `tenant` and `iss` claims must name the host's
tenant (so a key mix-up alone could not open another tenant).
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, OctKey

from core.tenancy import Tenant

AUDIENCE = "powerbuyer-api"
ALGORITHM = "HS256"
ACCESS_TOKEN_SECONDS = 15 * 60
# Seconds of clock difference tolerated on exp/iat between web processes.
LEEWAY_SECONDS = 5
_HKDF_SALT = b"powerbuyer/api-token/v1"


class InvalidToken(Exception):
    """The token is garbled, forged, expired, revoked or for another tenant."""


def derive_key(secret_key: str, tenant_id: int, version: int) -> bytes:
    """The 256-bit HS256 key of one tenant at one key version."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_HKDF_SALT,
        info=f"tenant:{tenant_id}:key:{version}".encode(),
    ).derive(secret_key.encode())


def issuer(tenant: Tenant) -> str:
    """The tenant's host, which is also the only place its tokens are accepted."""
    return f"{tenant.slug}.{current_app.config['SERVER_NAME']}".lower()


def _kid(version: int) -> str:
    return f"v{version}"


def _verifying_versions() -> dict[str, int]:
    config = current_app.config
    versions = {int(config["JWT_KEY_VERSION"]), *map(int, config["JWT_RETIRED_KEY_VERSIONS"])}
    return {_kid(version): version for version in versions}


def _key(tenant: Tenant, version: int) -> OctKey:
    return _derived_key(current_app.config["SECRET_KEY"], tenant.id, version)


@lru_cache(maxsize=4096)
def _derived_key(secret_key: str, tenant_id: int, version: int) -> OctKey:
    # Derived once per process, not per request: the derivation is deterministic, and
    # a process that holds SECRET_KEY in memory holds nothing more by keeping what it
    # derives from it. The secret is part of the cache key, so a different SECRET_KEY
    # (another app in the same process) never meets another's keys.
    return OctKey.import_key(derive_key(secret_key, tenant_id, version))


def sign(tenant: Tenant, subject: str, extra: dict[str, Any] | None = None) -> str:
    """A signed access token for `subject` (`user:<id>` or `client:<client_id>`)."""
    version = int(current_app.config["JWT_KEY_VERSION"])
    now = int(time.time())
    claims = {
        **(extra or {}),
        "iss": issuer(tenant),
        "aud": AUDIENCE,
        "sub": subject,
        "tenant": {"id": tenant.id, "slug": tenant.slug},
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ACCESS_TOKEN_SECONDS,
    }
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": _kid(version)}
    return jwt.encode(header, claims, _key(tenant, version))


# Tokens verified by this process: (token, tenant, issuer, secret, key versions) -> claims. An
# API client sends the same token on every request for its lifetime (15 minutes), and
# the same bytes verify the same way against the same keys; only the clock moves, so a
# remembered token is still refused once it expires. Revocation is not a property of
# the token: callers check the subject on every request (core.security.tokens).
_VERIFIED: dict[tuple[str, int, str, str, frozenset[str]], dict[str, Any]] = {}
_VERIFIED_MAX = 10_000


def verify(token: str, tenant: Tenant) -> dict[str, Any]:
    """The claims of a valid token of `tenant`; InvalidToken for anything else."""
    versions = _verifying_versions()
    key = (token, tenant.id, issuer(tenant), current_app.config["SECRET_KEY"], frozenset(versions))
    claims = _VERIFIED.get(key)
    if claims is not None:
        if time.time() <= claims["exp"] + LEEWAY_SECONDS:
            return dict(claims)
        _VERIFIED.pop(key, None)
    claims = _verify(token, tenant, versions)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[key] = claims
    return dict(claims)


def _verify(token: str, tenant: Tenant, versions: dict[str, int]) -> dict[str, Any]:
    def pick_key(guest: GuestProtocol) -> OctKey:
        version = versions.get(guest.headers().get("kid", ""))
        if version is None:
            raise InvalidToken("unknown signing key")
        return _key(tenant, version)

    try:
        claims = jwt.decode(token, pick_key, algorithms=[ALGORITHM]).claims
        jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer(tenant)},
            aud={"essential": True, "value": AUDIENCE},
            sub={"essential": True},
            jti={"essential": True},
            iat={"essential": True},
            exp={"essential": True},
        ).validate(claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc) or type(exc).__name__) from exc
    if claims.get("tenant") != {"id": tenant.id, "slug": tenant.slug}:
        raise InvalidToken("token of another tenant")
    return claims
