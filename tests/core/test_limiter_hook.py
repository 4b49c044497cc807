"""Flask-Limiter's per-request hook runs only when a limit of the kind it enforces
exists (core/app.py); once one does, it is enforced as before."""

from __future__ import annotations

import uuid

from flask import Blueprint, Flask

from core.app import create_app
from core.security import throttle
from core.security.authz import public


def test_a_blueprint_limit_added_to_the_app_is_enforced(app_config: dict) -> None:
    app: Flask = create_app(app_config)
    probe = Blueprint(f"probe_{uuid.uuid4().hex[:8]}", __name__)

    @probe.get("/limit-probe")
    @public
    def limit_probe() -> str:
        return "ok"

    # A blueprint limit is checked by the hook alone: no wrapper around the view.
    throttle.limiter(app).limit("2 per minute")(probe)
    app.register_blueprint(probe)
    client = app.test_client()
    statuses = [client.get("/limit-probe").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
