"""Flask blueprints: screens (htmx + Jinja), the apex signup, the portal, /api/v1."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
