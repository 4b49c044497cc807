"""The JSON API under /api/v1, on tenant hosts only.

`spec` routes and documents each endpoint (web/api/openapi.py); its document is served
at /api/v1/openapi.json. Errors, unknown routes included, are problem+json (web/errors.py
answers so for every path under /api/). Every endpoint not marked @public needs a
bearer access token (web/api/auth.py issues them, web/api/principal.py checks them).
"""

from __future__ import annotations

from flask import Blueprint, Flask

from web import hosts
from web.api.openapi import ApiSpec

bp = Blueprint("api", __name__, url_prefix="/api/v1")
spec = ApiSpec(
    bp,
    title="Power Buyer API",
    version="1.0.0",
    description="The brokerage's data, for integrators. Each tenant's API is on its own host.",
)

# Endpoint modules register on `bp` and `spec` when imported.
from web.api import (  # noqa: E402, F401
    agents,
    auth,
    customers,
    meta,
    policies,
    principal,
    products,
    quotes,
    verifications,
)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    principal.init_app(app, bp.name)
    # Only bearer tokens authenticate here (web/api/principal.py), and a forged
    # cross-site request cannot carry one, so CSRF tokens have nothing to protect.
    app.extensions["csrf"].exempt(bp)
    app.register_blueprint(bp)
    auth.init_app(app)
