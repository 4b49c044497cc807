"""Session cookies that are valid on one tenant's host only.

Cookies are host-only (no Domain attribute), so a browser never sends A's cookie to
B. A cookie copied by hand would still carry a valid signature, so the signing salt
includes the host: on another tenant's host the signature does not verify and the
session starts empty. (The session is opened before tenant resolution runs, so the
host, which names the tenant, is what the salt can use.)
"""

from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class TenantSessionInterface(SecureCookieSessionInterface):
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
