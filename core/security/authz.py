"""One authorization mechanism for screens, API endpoints and jobs.

Every view declares what it needs: `@requires("customers:read")`, or `@public` for
the few that anyone may call (login, health, signup). `check_routes(app)` refuses to
start an app with a view that declares neither (default deny).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort
from flask_login import current_user

from core.security.permissions import ALL_PERMISSIONS

F = TypeVar("F", bound=Callable[..., Any])

PERMISSION_ATTR = "_pb_permissions"
PUBLIC_ATTR = "_pb_public"


class Denied(PermissionError):
    """The caller lacks a permission (403 for a signed-in user, 401/login otherwise)."""

    def __init__(self, permission: str) -> None:
        super().__init__(f"missing permission {permission}")
        self.permission = permission


def has_permission(user: Any, permission: str) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if not getattr(user, "active", False):
        return False
    return bool(user.has_permission(permission))


def authorize(permission: str, user: Any = None) -> None:
    """Raise Denied unless `user` (default: the current user) holds `permission`."""
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    subject = current_user if user is None else user
    if not has_permission(subject, permission):
        raise Denied(permission)


def requires(*permissions: str) -> Callable[[F], F]:
    """Decorate a view: every permission is required. Anonymous callers get 401 (the
    web layer turns that into a login redirect for screens)."""
    for permission in permissions:
        if permission not in ALL_PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                abort(401)
            for permission in permissions:
                authorize(permission)
            return view(*args, **kwargs)

        setattr(guarded, PERMISSION_ATTR, tuple(permissions))
        return guarded  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    """Mark a view as open to anyone (it must do its own checks if any)."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def login_only(view: F) -> F:
    """A view any signed-in user of the tenant may use (their own profile, say)."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            abort(401)
        return view(*args, **kwargs)

    setattr(guarded, PERMISSION_ATTR, ())
    return guarded  # type: ignore[return-value]


def declared(view: Callable[..., Any]) -> tuple[str, ...] | None:
    """The permissions a view declares; () for login-only or public; None if undeclared."""
    if getattr(view, PUBLIC_ATTR, False):
        return ()
    return getattr(view, PERMISSION_ATTR, None)


def undeclared_endpoints(app: Flask, allow: frozenset[str] = frozenset()) -> list[str]:
    return sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint not in allow and declared(view) is None
    )


def check_routes(app: Flask, allow: frozenset[str] = frozenset()) -> None:
    """Default deny: refuse to start with a view that declares no permission."""
    missing = undeclared_endpoints(app, allow)
    if missing:
        raise RuntimeError(
            "views without a declared permission (use @requires, @login_only or @public): "
            + ", ".join(missing)
        )
