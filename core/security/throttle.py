"""Rate limits on signing in (Flask-Limiter, counters in Redis).

Failed attempts are counted, per client address and per account (the account's key
carries the tenant), across every step that checks a credential: the password, the
second-factor code, a recovery code and a security key. Successful sign-ins cost
nothing, so an office behind one address is never locked out by its own staff.
Past a limit the step answers 429 until the window has passed. The per-account
lockout (core.security.accounts) is the durable counterpart; these limits also
slow down guessing against accounts that do not exist.

Password-reset requests, which send mail, are counted whether they succeed or not.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from core.tenancy import current_tenant

# Flask-Security endpoints where a credential is checked.
SIGN_IN_ENDPOINTS = (
    "login",
    "two_factor_token_validation",
    "mf_recovery",
    "wan_signin_response",
)
RECOVERY_ENDPOINTS = ("forgot_password",)
RECOVERY_PER_IP = "10 per hour"
RECOVERY_PER_ACCOUNT = "3 per hour"
SIGN_IN_MESSAGE = "Too many failed sign-in attempts. Wait a few minutes, then try again."
RECOVERY_MESSAGE = "Too many password reset requests. Wait an hour, then try again."
EXTENSION = "powerbuyer.limiter"


def _ip() -> str:
    return f"ip:{get_remote_address()}"


def _account() -> str:
    """The account a sign-in step is about, with its tenant: the address typed on the
    form, or the user half-way through a second factor."""
    tenant = current_tenant()
    slug = tenant.slug if tenant else "-"
    email = request.form.get("email", "").strip().lower()
    if email:
        return f"{slug}:email:{email}"
    pending = session.get("tf_user_id")
    if pending:
        return f"{slug}:user:{pending}"
    return f"{slug}:{_ip()}"


def _failed(response: Response) -> bool:
    return response.status_code >= 400


def limiter(app: Flask | None = None) -> Limiter:
    return (app or current_app).extensions[EXTENSION]


def init_app(app: Flask) -> None:
    """Wrap Flask-Security's sign-in views in the limits (after Security.init_app)."""
    redis = app.extensions["redis"]
    # One limiter per app, storing through the app's own Redis connection pool.
    instance = Limiter(
        _ip,
        app=app,
        storage_uri="redis://",
        storage_options={"connection_pool": redis.connection_pool, "key_prefix": "pb:limits"},
        headers_enabled=True,
        strategy="moving-window",
    )
    app.extensions[EXTENSION] = instance
    blueprint = app.config["SECURITY_BLUEPRINT_NAME"]

    def per_ip() -> str:
        return app.config["LOGIN_RATE_LIMIT_PER_IP"]

    def per_account() -> str:
        return app.config["LOGIN_RATE_LIMIT_PER_ACCOUNT"]

    sign_in = [
        instance.shared_limit(
            per_ip,
            "sign-in-ip",
            key_func=_ip,
            methods=["POST"],
            deduct_when=_failed,
            error_message=SIGN_IN_MESSAGE,
        ),
        instance.shared_limit(
            per_account,
            "sign-in-account",
            key_func=_account,
            methods=["POST"],
            deduct_when=_failed,
            error_message=SIGN_IN_MESSAGE,
        ),
    ]
    recovery = [
        instance.shared_limit(
            RECOVERY_PER_IP,
            "recovery-ip",
            key_func=_ip,
            methods=["POST"],
            error_message=RECOVERY_MESSAGE,
        ),
        instance.shared_limit(
            RECOVERY_PER_ACCOUNT,
            "recovery-account",
            key_func=_account,
            methods=["POST"],
            error_message=RECOVERY_MESSAGE,
        ),
    ]
    for names, limits in ((SIGN_IN_ENDPOINTS, sign_in), (RECOVERY_ENDPOINTS, recovery)):
        for name in names:
            endpoint = f"{blueprint}.{name}"
            view = app.view_functions.get(endpoint)
            if view is None:
                continue
            for limit in limits:
                view = limit(view)
            app.view_functions[endpoint] = view
