"""Flask-Security's views (login, two-factor, security keys, password change and
reset) on tenant hosts, in our layout.

Users live in tenant schemas, so on the apex there is nobody to log in: the whole
Flask-Security blueprint answers 404 there. Its login template is ours
(SECURITY_LOGIN_USER_TEMPLATE = auth/login.html, set in core.config); its other pages
extend web/templates/security/base.html, which puts them in the layout.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, request, template_rendered
from flask_wtf import FlaskForm

from web import hosts

_INVALID_FORM = "_pb_invalid_form"


def _note_invalid_forms(sender: Flask, template: Any, context: dict[str, Any], **_: Any) -> None:
    if any(isinstance(v, FlaskForm) and v.errors for v in context.values()):
        setattr(g, _INVALID_FORM, True)


def _unprocessable_on_invalid_form(response: Response) -> Response:
    # Flask-Security answers a rejected form POST with the form again and a 200; our
    # rule is 422 with the form, so clients (and htmx) can tell failure from success.
    # Some of its successful POSTs render a page too (the authenticator's QR code, new
    # recovery codes), so only a page showing a form with errors counts as rejected.
    if (
        request.method == "POST"
        and response.status_code == 200
        and response.mimetype == "text/html"
        and g.get(_INVALID_FORM)
    ):
        response.status_code = 422
    return response


def init_app(app: Flask) -> None:
    name = app.config["SECURITY_BLUEPRINT_NAME"]
    hosts.tenant_only(app, name)
    app.after_request_funcs.setdefault(name, []).append(_unprocessable_on_invalid_form)
    template_rendered.connect(_note_invalid_forms, app)
