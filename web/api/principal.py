"""Bearer authentication for /api/v1: the only way in.

Before each API view, the `Authorization: Bearer` token is verified and the user it
stands for (a BearerUser for a user, a ClientPrincipal for an API client; both
values, not rows: core.security.tokens) becomes Flask-Login's
current user, so `@requires` guards API views exactly as it guards screens.

A session cookie never authenticates an API call: the current user is set here for
every API request, before any view can read it, so Flask-Login never falls back to
the cookie. That is also why the API blueprint can be exempt from CSRF — a request
that a browser forges carries cookies, not a bearer token. Views marked `@public`
(the token endpoints, ping) run with an anonymous user whatever the request carries.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request
from werkzeug.exceptions import Unauthorized

from core.security import authz, tokens

REALM = "api"


class BearerRejected(Unauthorized):
    """401 with the RFC 6750 challenge; `error` is omitted when no token was sent."""

    def __init__(self, description: str, error: str | None = None) -> None:
        super().__init__(description)
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += f', error="{error}", error_description="{description}"'
        self.challenge = challenge

    def get_headers(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        return [*super().get_headers(*args, **kwargs), ("WWW-Authenticate", self.challenge)]


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer <token>`, if that is what was sent."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _is_public_view() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return view is None or authz.access(view) == authz.PUBLIC


def authenticate() -> None:
    anonymous = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]
    # Flask-Login reads the current user from g._login_user; setting it first keeps
    # the session cookie out of every API request.
    g._login_user = anonymous
    if _is_public_view():
        return
    token = bearer_token()
    if token is None:
        raise BearerRejected("Send an access token: Authorization: Bearer <token>.")
    try:
        g._login_user = tokens.principal_for(token)
    except tokens.InvalidToken as exc:
        current_app.logger.info("bearer token rejected: %s", exc)
        raise BearerRejected(
            "The access token is expired, revoked or not valid here.", "invalid_token"
        ) from None


def init_app(app: Flask, blueprint: str) -> None:
    def anonymous_until_authenticated() -> None:
        # Before every other hook (Flask-Principal's identity loader, the session
        # guards): on an API request nothing may take its user from the session
        # cookie, even before `authenticate` names the bearer. It also spares each
        # request Flask-Login's look into the session.
        if blueprint in request.blueprints:
            g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]

    app.before_request_funcs.setdefault(None, []).insert(0, anonymous_until_authenticated)
    app.before_request_funcs.setdefault(blueprint, []).append(authenticate)
