"""Authenticator-app codes that work once.

Flask-Security checks a TOTP code against the user's secret but leaves replay
protection to the application (its Totp class documents the two methods below). The
last accepted time step of each user is kept in Redis, under the tenant's key, for as
long as any code could still be valid; a code from that step or an earlier one is
refused, so a code seen over someone's shoulder cannot be used again.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_security import Totp
from passlib.totp import TotpMatch

from core.tenancy import tenant_key

# Codes are accepted within TWO_FACTOR_AUTHENTICATOR_VALIDITY (120 s) either side of
# now; remembering the last step a little longer than that covers the whole window.
REMEMBER_SECONDS = 300


def _key(user: Any) -> str:
    return tenant_key("totp-last-step", user.fs_uniquifier)


class ReplayProofTotp(Totp):
    def get_last_counter(self, user: Any) -> int | None:
        stored = current_app.extensions["redis"].get(_key(user))
        return int(stored) if stored is not None else None

    def set_last_counter(self, user: Any, tmatch: TotpMatch) -> None:
        current_app.extensions["redis"].set(_key(user), tmatch.counter, ex=REMEMBER_SECONDS)
