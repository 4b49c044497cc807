"""Addresses on other hosts than the request's: the apex and tenants' own hosts.

`url_for` builds for the current host; a signup on the apex must send its browser to
the new tenant's host, and an error page on an unknown host must link to the apex.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, has_request_context


def _base(host: str) -> str:
    return f"{current_app.config['PREFERRED_URL_SCHEME']}://{host}"


def apex_url(path: str = "/") -> str:
    return _base(current_app.config["SERVER_NAME"]) + path


def tenant_url(slug: str, path: str = "/") -> str:
    return _base(f"{slug}.{current_app.config['SERVER_NAME']}") + path


def _external_urls_on_the_tenants_host(app: Flask) -> None:
    """`url_for(..., _external=True)` while serving a tenant names the tenant's host.

    Flask builds external URLs on SERVER_NAME, the apex; links in mail that a tenant's
    page sends (Flask-Security's password reset, say) must open that tenant's host.
    """
    build = app.url_for

    def url_for(endpoint: str, /, *, _external: bool | None = None, **values: Any) -> str:
        tenant = g.get("tenant") if has_request_context() else None
        if _external and tenant is not None and not values.get("_scheme"):
            return tenant_url(tenant.slug, build(endpoint, _external=False, **values))
        return build(endpoint, _external=_external, **values)

    app.url_for = url_for  # type: ignore[method-assign]
    app.jinja_env.globals["url_for"] = url_for


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(apex_url=apex_url, tenant_url=tenant_url)
    _external_urls_on_the_tenants_host(app)
