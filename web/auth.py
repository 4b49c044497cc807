"""Flask-Security's views (login, logout) on tenant hosts, in our layout.

Users live in tenant schemas, so on the apex there is nobody to log in: the whole
Flask-Security blueprint answers 404 there. Its login template is ours
(SECURITY_LOGIN_USER_TEMPLATE = auth/login.html, set in core.config).
"""

from __future__ import annotations

from flask import Flask, Response, request

from web import hosts


def _unprocessable_on_invalid_form(response: Response) -> Response:
    # Flask-Security answers a rejected form POST with the form again and a 200; our
    # rule is 422 with the form, so clients (and htmx) can tell failure from success.
    if (
        request.method == "POST"
        and response.status_code == 200
        and response.mimetype == ("text/html")
    ):
        response.status_code = 422
    return response


def init_app(app: Flask) -> None:
    name = app.config["SECURITY_BLUEPRINT_NAME"]
    hosts.tenant_only(app, name)
    app.after_request_funcs.setdefault(name, []).append(_unprocessable_on_invalid_form)
