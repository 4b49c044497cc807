"""The password policy, one for every way a password is set.

At least SECURITY_PASSWORD_LENGTH_MIN (12) characters, and not guessable: zxcvbn
(SECURITY_PASSWORD_COMPLEXITY_CHECKER) scores the password against the frequency
lists it ships (common passwords, names, English words, keyboard patterns) and the
user's own details, offline. The check is Flask-Security's password validator, so its
change and reset forms apply the same policy as signup, the CLI and invitations,
which call `validate` here.
"""

from __future__ import annotations

from flask_security import hash_password
from flask_security.proxies import _security


class PasswordRejected(ValueError):
    """The password breaks the policy; `messages` says why, for the form."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages))
        self.messages = messages


def validate(password: str, **user_info: str) -> str:
    """The password, normalised as Flask-Security compares it at login; raises
    PasswordRejected. `user_info` (email, name, ...) is what the password must not
    be guessable from."""
    messages, normalised = _security.password_util.validate(password, True, **user_info)
    if messages:
        raise PasswordRejected([str(m) for m in messages])
    return normalised


def problems(password: str, **user_info: str) -> list[str]:
    """What is wrong with `password` (empty when the policy accepts it)."""
    try:
        validate(password, **user_info)
    except PasswordRejected as exc:
        return exc.messages
    return []


def hash_new(password: str, **user_info: str) -> str:
    """Validate and hash a new password; raises PasswordRejected."""
    return hash_password(validate(password, **user_info))
