"""User and role tables, created in every tenant schema.

Flask-Security's complete SQLAlchemy models, so MFA, WebAuthn and token columns are
already there for the identity issue. Table names carry no schema: the transaction's
search_path puts them in the current tenant's schema.
"""

from __future__ import annotations

from datetime import datetime

from flask_security.models import sqla
from sqlalchemy import DateTime
from sqlalchemy.orm import Mapped, mapped_column

from core import generations
from core.db import Base
from core.security.pii import pii, tag_columns
from core.tenancy import require_tenant

sqla.FsModels.set_db_info(
    base_model=Base,
    user_table_name="users",
    role_table_name="roles",
    webauthn_table_name="webauthn",
)


class Role(Base, sqla.FsRoleMixin):
    __tablename__ = "roles"


class User(Base, sqla.FsUserMixin):
    __tablename__ = "users"

    # Lockout after consecutive failed sign-ins (core.security.accounts).
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Flask-Security asks the user model these questions; the answers depend on tenant
    # settings, so core.security.accounts gives them (imported late: it imports this).
    def track_failed_authn(self, auth_type: str, tfa: bool = False) -> None:
        from core.security import accounts

        super().track_failed_authn(auth_type, tfa)
        accounts.record_failed_login(self, auth_type, second_factor=tfa)

    def has_permission(self, permission: str) -> bool:
        # Flask-Security's answer without the set it builds of each role's permissions
        # on every call (a check runs for each guarded view, menu entry and masked
        # field). The column holds a list; a str, which it never holds, grants nothing,
        # as it does there (a set of its characters).
        for role in self.roles:
            held = role.permissions
            if held and not isinstance(held, str) and permission in held:
                return True
        return False

    def held_permissions(self) -> frozenset[str]:
        """Every permission `has_permission` grants, by the same rule."""
        return frozenset(
            permission
            for role in self.roles
            if role.permissions and not isinstance(role.permissions, str)
            for permission in role.permissions
        )

    def is_locked(self, form_error: list[str] | None = None) -> bool:
        from core.security import accounts

        return accounts.is_locked(self, form_error)

    def check_tf_required(
        self, tf_setup_methods: list[tuple[str, str]], tf_fresh: bool
    ) -> tuple[bool, list[tuple[str, str]]]:
        from core.security import accounts

        required, methods = super().check_tf_required(tf_setup_methods, tf_fresh)
        return required or accounts.mfa_required(self), methods

    def check_tf_required_setup(self) -> bool:
        from core.security import accounts

        return bool(super().check_tf_required_setup() or accounts.mfa_required(self))


class WebAuthn(Base, sqla.FsWebAuthnMixin):
    """A registered security key (WebAuthn credential) of a user."""

    __tablename__ = "webauthn"


# Personal data in the users table (docs/personal-data.md). Tagged, not encrypted: the
# email is the sign-in name, looked up on every login.
tag_columns(
    User.__table__,
    email=pii("contact", kind="email"),
    username=pii("contact", kind="name"),
    tf_phone_number=pii("contact", kind="phone"),
    us_phone_number=pii("contact", kind="phone"),
    current_login_ip=pii("contact", kind="ip_address"),
    last_login_ip=pii("contact", kind="ip_address"),
)


def users_generation() -> str:
    """The generation (core.generations) of the current tenant's users and roles, which
    processes remember for bearer requests (core.security.tokens)."""
    return f"users:{require_tenant().id}"


# Every ORM write of a user or a role (deactivation, a new uniquifier, a role granted or
# taken) bumps it, whichever module makes it: registered with the models themselves.
generations.track((User, Role), users_generation)
