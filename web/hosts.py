"""Which host a blueprint answers on.

The apex (no tenant) serves the marketing page and signup only; tenant hosts serve
the screens, login and the API. Anything asked of the wrong host is a 404, as if it
did not exist there. Blueprint hooks run after the app-wide tenant resolver, so
`g.tenant` is already decided when these checks run.
"""

from __future__ import annotations

from flask import Flask, abort, g


def _require_tenant() -> None:
    if g.get("tenant") is None:
        abort(404)


def _require_apex() -> None:
    if g.get("tenant") is not None:
        abort(404)


def tenant_only(app: Flask, blueprint: str) -> None:
    app.before_request_funcs.setdefault(blueprint, []).insert(0, _require_tenant)


def apex_only(app: Flask, blueprint: str) -> None:
    app.before_request_funcs.setdefault(blueprint, []).insert(0, _require_apex)
