"""Full pages for browsers, fragments for htmx.

Every screen template starts with `{% extends layout %}`. `layout` is `base.html`
(navigation, flashes, scripts) for a normal request and `fragment.html` (the content
block and flashes only) for an htmx request, so one template serves both. Responses
say `Vary: HX-Request` so no cache hands a fragment to a full-page load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_login import current_user
from jinja2 import FileSystemLoader

TEMPLATES = Path(__file__).parent / "templates"
PRODUCT_NAME = "Power Buyer"


def wants_fragment() -> bool:
    """True for htmx swaps; boosted links and history restores need the whole page."""
    htmx = request.htmx  # type: ignore[attr-defined]
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def _layout_context() -> dict[str, Any]:
    return {
        "layout": "fragment.html" if wants_fragment() else "base.html",
        "product_name": PRODUCT_NAME,
    }


def _vary(response: Response) -> Response:
    response.vary.add("HX-Request")
    # A signed-in user's screens hold business and personal data: no cache keeps them.
    # (`is_anonymous` reads no column: after a commit, the user is not reloaded for it.)
    if g.get("tenant") is not None and not current_user.is_anonymous:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    # The app's own loader is searched before every blueprint's, so these templates
    # also override Flask-Security's where they share a name.
    app.jinja_loader = FileSystemLoader(TEMPLATES)  # type: ignore[method-assign]
    app.context_processor(_layout_context)
    app.after_request(_vary)
