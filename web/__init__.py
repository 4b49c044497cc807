"""Flask blueprints: screens (htmx + Jinja), the apex signup, the portal, /api/v1.

`init_app` runs after the tenant resolver is installed (core.app loads "tenants"
first), so every blueprint's host rule below sees `g.tenant` already decided.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from web import (
        account,
        admin,
        agents,
        api,
        assets,
        audit,
        auth,
        cli,
        clients,
        customer_import,
        customers,
        errors,
        health,
        jobs,
        menu,
        policies,
        portal,
        products,
        quotes,
        rendering,
        requestlog,
        signup,
        site,
        urls,
    )

    requestlog.init_app(app)
    rendering.init_app(app)
    menu.init_app(app)
    urls.init_app(app)
    errors.init_app(app)
    assets.init_app(app)
    health.init_app(app)
    auth.init_app(app)
    site.init_app(app)
    signup.init_app(app)
    jobs.init_app(app)
    audit.init_app(app)
    admin.init_app(app)
    account.init_app(app)
    clients.init_app(app)
    agents.init_app(app)
    customers.init_app(app)
    customer_import.init_app(app)
    products.init_app(app)
    quotes.init_app(app)
    policies.init_app(app)
    portal.init_app(app)
    api.init_app(app)
    cli.init_app(app)
