"""Static files: ours in web/static, npm's copied into web/static/dist by `npm run build`.

Served at /static on every host (they hold no tenant data, and a suspended tenant's
403 page still wants its stylesheet). A missing build is not fatal: pages render
unstyled and without htmx, and the log says how to fix it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, send_from_directory

from core.security.authz import public
from tenants.resolver import exempt_endpoint

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# What web/build-assets.mjs copies and base.html loads.
DIST_FILES = ("htmx.min.js", "pico.min.css")


@public
def serve_static(filename: str) -> Response:
    return send_from_directory(STATIC, filename)


def missing_dist_files() -> list[str]:
    return [name for name in DIST_FILES if not (STATIC / "dist" / name).is_file()]


def init_app(app: Flask) -> None:
    app.add_url_rule("/static/<path:filename>", endpoint="static", view_func=serve_static)
    exempt_endpoint(app, "static")
    missing = missing_dist_files()
    if missing:
        log.warning(
            "front-end files missing from %s: %s; pages will render without htmx and "
            "styles. Run `npm ci && npm run build`.",
            STATIC / "dist",
            ", ".join(missing),
        )
