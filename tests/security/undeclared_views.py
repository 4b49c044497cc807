"""A test-only component whose view declares nobody: create_app must refuse it."""

from __future__ import annotations

from flask import Flask


def undeclared() -> str:
    return "nobody said who may call this"


def init_app(app: Flask) -> None:
    app.add_url_rule("/undeclared", "undeclared", undeclared)
