"""Error responses: HTML pages in the layout, `application/problem+json` under /api/.

Every HTTP error, including the resolver's 404/403 and an unexpected exception's 500,
passes through `handle_http_error`, so the description given to `abort()` is what the
visitor reads. API errors follow RFC 9457; a 422 adds `errors`, field -> messages.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import Forbidden, HTTPException, UnprocessableEntity
from werkzeug.http import HTTP_STATUS_CODES

from core.security.authz import Denied

PROBLEM_MIMETYPE = "application/problem+json"
API_PREFIX = "/api/"

FieldMessages = dict[str, list[str]]


class ValidationFailed(UnprocessableEntity):
    """Input that parsed but broke a rule; `errors` maps each field to its messages."""

    def __init__(self, errors: FieldMessages, description: str | None = None) -> None:
        super().__init__(description or "Some fields are not valid.")
        self.errors = errors


def problem(
    status: int, detail: str, *, title: str | None = None, errors: FieldMessages | None = None
) -> Response:
    """An RFC 9457 problem document. `about:blank` types mean: the status says it all."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTP_STATUS_CODES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_MIMETYPE
    return response


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def handle_http_error(error: HTTPException) -> Response | HTTPException:
    if error.code is None or error.code < 400:
        return error
    if error.code == 401 and not is_api_request():
        # A screen sends whoever is not signed in to the login page, and back after it
        # (Flask-Security's redirect with `next`, as for its own views).
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    errors = getattr(error, "errors", None)
    if is_api_request():
        response = problem(error.code, error.description or "", errors=errors)
    else:
        html = render_template("errors/error.html", error=error, errors=errors)
        response = Response(html, status=error.code, mimetype="text/html")
    # Keep what the error itself asks for, such as Allow on a 405.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    if error.code == 401 and "WWW-Authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def handle_denied(denied: Denied) -> Response | HTTPException:
    """A signed-in caller without the permission (already audited by core.security.authz)."""
    return handle_http_error(Forbidden(f"This needs the permission {denied.permission}."))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Denied, handle_denied)
