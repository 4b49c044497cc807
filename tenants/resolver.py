"""Host -> tenant, the first thing every request does.

`<slug>.<SERVER_NAME>` is a tenant, `SERVER_NAME` itself is the apex (signup and
marketing only), anything else is unknown. Unknown -> 404, suspended -> 403.
Endpoints marked with `exempt_endpoint` (health checks, static files) answer on any
host with no tenant: load balancers probe by IP address.

A process remembers the tenants it found until the registry changes
(registry.RecentTenants; every registry write bumps a generation in Redis), so a
suspension made by any process takes effect on the next request.
"""

from __future__ import annotations

from flask import Flask, abort, current_app, g, request

from core.db import db
from core.tenancy import reset_tenant, set_tenant
from tenants import registry


def slug_from_host(host: str, server_name: str) -> str | None:
    """`acme.localhost:5000` -> `acme`; the apex -> ``""``; a foreign host -> None."""
    host, server_name = host.lower(), server_name.lower()
    if host == server_name:
        return ""
    suffix = "." + server_name
    if host.endswith(suffix):
        label = host[: -len(suffix)]
        if label and "." not in label:
            return label
    return None


_EXEMPT = "powerbuyer.host_exempt"
_RECENT = "powerbuyer.recent_tenants"


def exempt_endpoint(app: Flask, endpoint: str) -> None:
    """Serve `endpoint` on every host, known or not, without a tenant."""
    app.extensions.setdefault(_EXEMPT, set()).add(endpoint)


def resolve_tenant() -> None:
    g.tenant = None
    if request.endpoint in current_app.extensions.get(_EXEMPT, ()):
        return
    slug = slug_from_host(request.host, current_app.config["SERVER_NAME"])
    if slug is None:
        abort(404, description="This address does not belong to any brokerage.")
    if slug == "":
        return
    tenant = current_app.extensions[_RECENT].by_slug(slug)
    if tenant is None:
        abort(404, description="No brokerage uses this address.")
    if tenant.status != "active":
        abort(403, description="This brokerage's account is suspended.")
    g.tenant = tenant
    g.tenant_token = set_tenant(tenant)


def _release_tenant(exc: BaseException | None) -> None:
    token = g.pop("tenant_token", None)
    if token is not None:
        reset_tenant(token)


def init_app(app: Flask) -> None:
    # Registered first so that nothing before it can touch tenant data.
    app.before_request_funcs.setdefault(None, []).insert(0, resolve_tenant)
    app.teardown_request(_release_tenant)
    app.extensions["powerbuyer.tenants"] = registry.Directory(lambda: db.engine)
    app.extensions[_RECENT] = registry.RecentTenants(lambda: db.engine)
