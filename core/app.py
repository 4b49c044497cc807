"""The application factory.

Extensions are initialised here, in order. The components named in `COMPONENTS`
(tenant resolution, then the web blueprints) are loaded last by name, so the kernel
never imports the layers that sit on top of it.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_security import Security
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from redis import Redis

from core import dbroles, embedded, logs
from core.config import check_production, load_config
from core.db import check_connections_on_checkout, db, keep_prepared_statements
from core.notify import SecurityMailUtil
from core.security import accounts, authz, throttle
from core.security.datastore import TenantUserDatastore
from core.security.models import Role, User, WebAuthn
from core.security.sessions import TenantSessionInterface
from core.security.totp import ReplayProofTotp

DEFAULT_COMPONENTS = ("tenants", "web")

csrf = CSRFProtect()
# Flask-Security's mail goes through the notification-channel hook (core.notify), and
# an authenticator code is accepted once (core.security.totp).
security = Security(mail_util_cls=SecurityMailUtil, totp_cls=ReplayProofTotp)
htmx = Htmx()


class PowerBuyerFlask(Flask):
    """Flask, remembering which of its functions are coroutine functions.

    Flask asks `ensure_sync` before every call of a hook, view or error handler (about
    twenty per request here), and each answer inspects the function's code flags
    again. A function does not change kind, so the answer is kept, weakly: a function
    made for one request (an `after_this_request` callback) is forgotten with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_coroutine: weakref.WeakKeyDictionary[Callable[..., Any], bool] = (
            weakref.WeakKeyDictionary()
        )

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            is_coroutine = self._is_coroutine[func]
        except KeyError:
            synced = super().ensure_sync(func)
            self._is_coroutine[func] = synced is not func
            return synced
        except TypeError:  # not weakly referenceable
            return super().ensure_sync(func)
        return self.async_to_sync(func) if is_coroutine else func


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    config = load_config(overrides)
    check_production(config)
    logs.configure(config["LOG_FORMAT"])

    app = PowerBuyerFlask("powerbuyer", instance_path=config["INSTANCE_PATH"], static_folder=None)
    app.config.update(config)
    _connect_database(app)
    _connect_redis(app)

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            keep_prepared_statements(engine)
            check_connections_on_checkout(engine)
    app.session_interface = TenantSessionInterface()
    # CSRFProtect must be initialised before Security, which relies on it.
    csrf.init_app(app)
    security.init_app(
        app, TenantUserDatastore(db, User, Role, WebAuthn), login_form=accounts.AuditedLoginForm
    )
    # Flask-Security's request loader accepts its own auth tokens (header or query
    # string) wherever current_user is read, whatever API_ENABLED_METHODS says. Screens
    # sign in with a registered session only; the API has its own JWTs (web/api).
    app.login_manager.request_loader(_no_token_sign_in)
    throttle.init_app(app)  # sign-in rate limits, around Flask-Security's views
    _limiter_hook_only_when_needed(app)
    accounts.init_app(app)
    htmx.init_app(app)

    import core.models  # noqa: F401  (every tenant table, GDPR registration, periodic job)
    from core import audit, jobs, keys_cli, plugins

    plugins.init_app(app)
    jobs.init_app(app)
    audit.init_app(app)
    keys_cli.init_app(app)

    for name in app.config.get("COMPONENTS", DEFAULT_COMPONENTS):
        importlib.import_module(name).init_app(app)
    plugins.startup(app)
    # Default deny: every view, plugins' included, declares who may call it.
    authz.check_routes(app, allow=frozenset(authz.security_endpoints(app)))
    return app


def _no_token_sign_in(request: Any) -> None:
    return None


# Where Flask-Limiter keeps the limits that its before-request hook enforces (limits on
# the whole app, default limits, blueprint limits, meta limits, the in-memory fallback).
# Limits decorated onto a view are not among them: the view's wrapper checks those.
_MIDDLEWARE_LIMITS = (
    ("limit_manager", "_application_limits"),
    ("limit_manager", "_default_limits"),
    ("limit_manager", "_blueprint_limits"),
    (None, "_meta_limits"),
    (None, "_in_memory_fallback"),
)


def _limiter_hook_only_when_needed(app: Flask) -> None:
    """Run Flask-Limiter's before-request check only when some limit needs it.

    Every limit of ours is decorated onto its view (core.security.throttle, web/api),
    whose wrapper enforces it, so the app-wide hook finds nothing to check on any
    request, yet resolves limits, exemptions and meta limits each time. The guard looks
    at the limiter's lists on every request, so a limit of a kind the hook enforces,
    added at any time, is enforced; a list it cannot find counts as present.
    """
    limiter = throttle.limiter(app)
    check = limiter._check_request_limit

    def needed() -> bool:
        for owner, name in _MIDDLEWARE_LIMITS:
            holder = getattr(limiter, owner) if owner else limiter
            if getattr(holder, name, True):
                return True
        return False

    def check_request_limit() -> None:
        if needed():
            check()

    hooks = app.before_request_funcs[None]
    hooks[hooks.index(check)] = check_request_limit


def _connect_database(app: Flask) -> None:
    url = app.config["DATABASE_URL"]
    if not url:
        url = embedded.postgres_url(app.config["INSTANCE_PATH"])
        app.config["DATABASE_URL"] = url
    urls = dbroles.resolve(
        url, app.config["DATABASE_ADMIN_URL"], app.config["APP_DB_ROLE"], app.config["SECRET_KEY"]
    )
    app.config["SQLALCHEMY_DATABASE_URI"] = urls.app
    app.config["DATABASE_ADMIN_URL"] = urls.admin


def _connect_redis(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    if not url:
        url = embedded.redis_url(app.config["INSTANCE_PATH"])
        app.config["REDIS_URL"] = url
    # A connect timeout keeps /readyz and requests from hanging on an unreachable Redis;
    # no read timeout, because RQ workers block on reads by design.
    app.extensions["redis"] = Redis.from_url(url, socket_connect_timeout=5)


def redis_client(app: Flask) -> Redis:
    return app.extensions["redis"]
