"""Token endpoints: the password and client-credentials grants, refresh, revoke, and
`/me` (who the bearer token stands for).

Views parse and validate the JSON, call core.security.tokens, and turn its refusals
into problem documents: 422 with field errors for malformed input, 401 for
credentials or tokens that cannot be accepted, 403 when the account may not use
this way in.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from flask_limiter.util import get_remote_address
from flask_login import current_user
from werkzeug.datastructures import Authorization
from werkzeug.exceptions import Forbidden

from core.security import throttle, tokens
from core.security.authz import login_only, public
from core.security.permissions import ALL_PERMISSIONS
from core.tenancy import current_tenant
from web.api import spec
from web.api.openapi import PROBLEM
from web.api.principal import BearerRejected
from web.errors import FieldMessages, ValidationFailed

GRANT_TYPES = ("password", "client_credentials")

_STRING = {"type": "string", "minLength": 1, "maxLength": 1000}

PASSWORD_GRANT = spec.schema(
    "PasswordGrant",
    {
        "type": "object",
        "required": ["email", "password"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["password"]},
            "email": {**_STRING, "format": "email"},
            "password": _STRING,
            "otp": {
                "type": "string",
                "description": "The authenticator app's code, when the user set up two-factor.",
            },
        },
    },
)
CLIENT_GRANT = spec.schema(
    "ClientCredentialsGrant",
    {
        "type": "object",
        "required": ["grant_type"],
        "description": "client_id and client_secret go here or in an HTTP Basic header.",
        "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "client_id": _STRING,
            "client_secret": _STRING,
            "scope": {
                "type": "string",
                "description": "Space-separated permissions, a subset of the client's scopes.",
            },
        },
    },
)
TOKEN_RESPONSE = spec.schema(
    "TokenResponse",
    {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string", "description": "A JWT; send as a Bearer token."},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "description": "Seconds until it expires."},
            "refresh_token": {
                "type": "string",
                "description": "Users only: trade it once at /auth/refresh for a new pair.",
            },
        },
    },
)
REFRESH_REQUEST = spec.schema(
    "RefreshRequest",
    {
        "type": "object",
        "required": ["refresh_token"],
        "properties": {"refresh_token": _STRING},
    },
)
ME = spec.schema(
    "Me",
    {
        "type": "object",
        "required": ["subject", "kind", "permissions"],
        "properties": {
            "subject": {"type": "string", "description": "user:<id> or client:<client_id>."},
            "kind": {"type": "string", "enum": ["user", "client"]},
            "email": {"type": "string", "description": "Users only."},
            "name": {"type": "string", "description": "API clients only."},
            "permissions": {"type": "array", "items": {"type": "string"}},
        },
    },
)


def _json_body(*fields: str, required: tuple[str, ...] = ()) -> dict[str, str]:
    """The JSON object's string fields; ValidationFailed (422) names each bad one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed({"body": ["Send a JSON object."]}, "The request body is not JSON.")
    errors: FieldMessages = {}
    values: dict[str, str] = {}
    for name in fields:
        value = body.get(name)
        if value is None or value == "":
            if name in required:
                errors[name] = ["This field is required."]
        elif not isinstance(value, str):
            errors[name] = ["Must be a string."]
        elif "\x00" in value:
            # PostgreSQL text cannot hold NUL; no credential or token contains one.
            errors[name] = ["Must not contain NUL characters."]
        else:
            values[name] = value
    if errors:
        raise ValidationFailed(errors)
    return values


def _token_response(pair: tokens.TokenPair) -> Response:
    response = jsonify(pair.as_json())
    # RFC 6749 5.1: token responses must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _client_credentials(values: dict[str, str]) -> tuple[str, str]:
    basic = Authorization.from_header(request.headers.get("Authorization"))
    if basic is not None and basic.type == "basic":
        client_id, secret = basic.username or "", basic.password or ""
    else:
        client_id, secret = values.get("client_id", ""), values.get("client_secret", "")
    errors = {
        name: ["This field is required."] if not value else ["Must not contain NUL characters."]
        for name, value in (("client_id", client_id), ("client_secret", secret))
        if not value or "\x00" in value
    }
    if errors:
        raise ValidationFailed(errors)
    return client_id, secret


@spec.route(
    "/auth/token",
    "POST",
    summary="Trade credentials for an access token",
    tags=("auth",),
    public=True,
    request_body={
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": [PASSWORD_GRANT, CLIENT_GRANT]}}},
    },
    responses={
        "200": {
            "description": "An access token (and, for users, a refresh token).",
            "content": {"application/json": {"schema": TOKEN_RESPONSE}},
        },
        "401": PROBLEM,
        "403": PROBLEM,
        "422": PROBLEM,
        "429": PROBLEM,
    },
)
@public
def token() -> Response:
    """A user sends email and password (and `otp` when two-factor is set up); an API
    client sends `grant_type: client_credentials` with its id and secret, in the body
    or as HTTP Basic credentials."""
    values = _json_body(
        "grant_type", "email", "password", "otp", "client_id", "client_secret", "scope"
    )
    grant = values.get("grant_type", "password")
    if grant not in GRANT_TYPES:
        raise ValidationFailed({"grant_type": [f"One of: {', '.join(GRANT_TYPES)}."]})
    try:
        if grant == "client_credentials":
            client_id, secret = _client_credentials(values)
            pair = tokens.client_credentials_grant(client_id, secret, values.get("scope"))
        else:
            missing = {
                name: ["This field is required."]
                for name in ("email", "password")
                if name not in values
            }
            if missing:
                raise ValidationFailed(missing)
            pair = tokens.password_grant(values["email"], values["password"], values.get("otp"))
    except tokens.ClientInvalid as exc:
        raise ValidationFailed(exc.errors) from None
    except tokens.GrantRejected as exc:
        raise BearerRejected(str(exc)) from None
    except tokens.GrantForbidden as exc:
        raise Forbidden(str(exc)) from None
    return _token_response(pair)


@spec.route(
    "/auth/refresh",
    "POST",
    summary="Trade a refresh token for a new access and refresh token",
    tags=("auth",),
    public=True,
    request_body={
        "required": True,
        "content": {"application/json": {"schema": REFRESH_REQUEST}},
    },
    responses={
        "200": {
            "description": "A new pair; the refresh token sent is now used up.",
            "content": {"application/json": {"schema": TOKEN_RESPONSE}},
        },
        "401": PROBLEM,
        "422": PROBLEM,
    },
)
@public
def refresh() -> Response:
    """Each refresh token works once. Sending a used one again revokes every token of
    its family (it means the token was copied)."""
    values = _json_body("refresh_token", required=("refresh_token",))
    try:
        pair = tokens.refresh(values["refresh_token"])
    except tokens.GrantRejected as exc:
        raise BearerRejected(str(exc)) from None
    return _token_response(pair)


@spec.route(
    "/auth/revoke",
    "POST",
    summary="Revoke a refresh token and its family",
    tags=("auth",),
    public=True,
    request_body={
        "required": True,
        "content": {"application/json": {"schema": REFRESH_REQUEST}},
    },
    responses={
        "204": {"description": "Revoked, or not a known token (RFC 7009)."},
        "422": PROBLEM,
    },
)
@public
def revoke() -> tuple[str, int]:
    """Access tokens are not revocable one by one: they expire within 15 minutes, and
    "log out everywhere" ends all of a user's tokens at once."""
    values = _json_body("refresh_token", required=("refresh_token",))
    tokens.revoke(values["refresh_token"])
    return "", 204


def _permissions(principal: Any) -> list[str]:
    return sorted(p for p in ALL_PERMISSIONS if principal.has_permission(p))


@spec.route(
    "/me",
    "GET",
    summary="Who the access token stands for, and what it may do",
    tags=("auth",),
    responses={
        "200": {
            "description": "The token's subject.",
            "content": {"application/json": {"schema": ME}},
        },
        "401": PROBLEM,
    },
)
@login_only
def me() -> Response:
    principal = current_user._get_current_object()  # type: ignore[attr-defined]
    if isinstance(principal, tokens.ClientPrincipal):
        return jsonify(
            subject=principal.subject,
            kind="client",
            name=principal.name,
            permissions=_permissions(principal),
        )
    return jsonify(
        subject=f"user:{principal.id}",
        kind="user",
        email=principal.email,
        permissions=_permissions(principal),
    )


# --- rate limits ----------------------------------------------------------------------


def _ip_key() -> str:
    return f"ip:{get_remote_address()}"


def _account_key() -> str:
    """The account a grant is about, keyed as the web sign-in keys it (with its tenant),
    so failures through the API and on the login page add up."""
    tenant = current_tenant()
    slug = tenant.slug if tenant else "-"
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    email, client_id = body.get("email"), body.get("client_id")
    if isinstance(email, str) and email.strip():
        return f"{slug}:email:{email.strip().lower()}"
    if isinstance(client_id, str) and client_id.strip():
        return f"{slug}:client:{client_id.strip()}"
    return f"{slug}:{_ip_key()}"


def _failed(response: Response) -> bool:
    return response.status_code >= 400


def init_app(app: Flask) -> None:
    """Put the token endpoint under the sign-in rate limits of the login page
    (core.security.throttle): the same scopes, so the counts are shared."""
    limiter = throttle.limiter(app)
    view = app.view_functions["api.token"]
    for scope, setting, key in (
        ("sign-in-ip", "LOGIN_RATE_LIMIT_PER_IP", _ip_key),
        ("sign-in-account", "LOGIN_RATE_LIMIT_PER_ACCOUNT", _account_key),
    ):
        view = limiter.shared_limit(
            lambda setting=setting: app.config[setting],
            scope,
            key_func=key,
            methods=["POST"],
            deduct_when=_failed,
            error_message=throttle.SIGN_IN_MESSAGE,
        )(view)
    app.view_functions["api.token"] = view
