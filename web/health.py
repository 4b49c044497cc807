"""Liveness and readiness for load balancers and orchestrators.

Both answer on any host, tenant or not: probes come by IP address. `/healthz` says
the process serves requests; `/readyz` says it can do useful work (PostgreSQL and
Redis reachable) and names what is not, without leaking addresses or credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import text

from core.app import redis_client
from core.db import db
from core.security.authz import public
from tenants.resolver import exempt_endpoint

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


def _postgresql() -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _redis() -> None:
    redis_client(current_app).ping()


CHECKS: dict[str, Callable[[], None]] = {"postgresql": _postgresql, "redis": _redis}


@bp.get("/healthz")
@public
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception:
            log.exception("readiness check %s failed", name)
            results[name] = "unavailable"
    ready = all(result == "ok" for result in results.values())
    body = jsonify(status="ok" if ready else "unavailable", checks=results)
    return body, 200 if ready else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    for endpoint in ("health.healthz", "health.readyz"):
        exempt_endpoint(app, endpoint)
