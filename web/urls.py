"""Addresses on other hosts than the request's: the apex and tenants' own hosts.

`url_for` builds for the current host; a signup on the apex must send its browser to
the new tenant's host, and an error page on an unknown host must link to the apex.
"""

from __future__ import annotations

from flask import Flask, current_app


def _base(host: str) -> str:
    return f"{current_app.config['PREFERRED_URL_SCHEME']}://{host}"


def apex_url(path: str = "/") -> str:
    return _base(current_app.config["SERVER_NAME"]) + path


def tenant_url(slug: str, path: str = "/") -> str:
    return _base(f"{slug}.{current_app.config['SERVER_NAME']}") + path


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(apex_url=apex_url, tenant_url=tenant_url)
