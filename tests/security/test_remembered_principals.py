"""Bearer requests take the user from what the process remembers (core.generations):
a change made anywhere is still seen at the next request, because every write of a
user or a role bumps the tenant's user generation in Redis. Verified tokens are
remembered too, and an expired one is refused all the same."""

from __future__ import annotations

import time
from dataclasses import FrozenInstanceError

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import text

from core import generations
from core.db import db
from core.security import jwt, throttle, tokens
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests.security.test_tokens import assert_invalid_token, make_user, me, user_tokens


@pytest.fixture(autouse=True)
def fresh_sign_in_limits(app: Flask):
    throttle.limiter(app).reset()
    yield
    throttle.limiter(app).reset()


def _elsewhere(app: Flask, tenant: Tenant, sql: str, user_id: int, *, publish: bool) -> None:
    """Another process's write of the user (as the admin CLI would make it), and the
    generation bump it publishes through a Redis connection of its own."""
    with app.app_context(), tenant_context(tenant):
        db.session.execute(text(sql), {"id": user_id})
        db.session.commit()
    if publish:
        Redis.from_url(app.config["REDIS_URL"]).incr(generations.key(f"users:{tenant.id}"))


def test_a_user_deactivated_by_another_process_is_refused_at_the_next_request(
    app: Flask, alpha: Tenant, alpha_client
) -> None:
    user = make_user(app, alpha)
    token = user_tokens(alpha_client, user)["access_token"]
    assert me(alpha_client, token).status_code == 200
    assert me(alpha_client, token).status_code == 200  # now from memory
    _elsewhere(app, alpha, "UPDATE users SET active = false WHERE id = :id", user.id, publish=True)
    assert_invalid_token(me(alpha_client, token))


def test_a_role_taken_away_elsewhere_takes_its_permissions_with_it(
    app: Flask, alpha: Tenant, alpha_client
) -> None:
    user = make_user(app, alpha, roles=("agent",))
    token = user_tokens(alpha_client, user)["access_token"]
    assert me(alpha_client, token).json["permissions"]
    _elsewhere(app, alpha, "DELETE FROM roles_users WHERE user_id = :id", user.id, publish=True)
    assert me(alpha_client, token).json["permissions"] == []


def test_a_write_that_publishes_nothing_is_not_seen_until_the_memory_lapses(
    app: Flask, alpha: Tenant, alpha_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the bump is for: the same write without it leaves the process trusting
    what it remembers (until CACHE_SECONDS), so every write path must bump."""
    user = make_user(app, alpha)
    token = user_tokens(alpha_client, user)["access_token"]
    assert me(alpha_client, token).status_code == 200
    _elsewhere(app, alpha, "UPDATE users SET active = false WHERE id = :id", user.id, publish=False)
    assert me(alpha_client, token).status_code == 200
    later = time.monotonic() + generations.CACHE_SECONDS + 1
    monkeypatch.setattr(generations.time, "monotonic", lambda: later)
    assert_invalid_token(me(alpha_client, token))


def test_a_remembered_token_is_still_refused_once_it_expires(
    app: Flask, alpha: Tenant, alpha_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    assert me(alpha_client, token).status_code == 200  # verified, and remembered
    after_expiry = time.time() + jwt.ACCESS_TOKEN_SECONDS + jwt.LEEWAY_SECONDS + 1
    monkeypatch.setattr(jwt.time, "time", lambda: after_expiry)
    assert_invalid_token(me(alpha_client, token))


def test_a_remembered_token_is_not_accepted_on_another_tenants_host(
    app: Flask, alpha: Tenant, alpha_client, beta_client
) -> None:
    token = user_tokens(alpha_client, make_user(app, alpha))["access_token"]
    assert me(alpha_client, token).status_code == 200
    assert_invalid_token(me(beta_client, token))


def test_a_bearer_user_is_one_immutable_value_shared_by_requests_and_kept_out_of_sessions(
    app: Flask, alpha: Tenant, alpha_client
) -> None:
    """What makes sharing it safe: no request can change it, and no session holds it (a
    row attached to one request's session would be another thread's to change)."""
    user = make_user(app, alpha, roles=("agent",))
    token = user_tokens(alpha_client, user)["access_token"]
    with app.app_context(), tenant_context(alpha):
        first = tokens.principal_for(token)
        db.session.rollback()
        second = tokens.principal_for(token)
        assert second is first
        assert isinstance(first, tokens.BearerUser)
        assert not [row for row in db.session if isinstance(row, User)]
        with pytest.raises(FrozenInstanceError):
            first.active = False  # type: ignore[misc]
        assert (first.id, first.email, first.get_id()) == (user.id, user.email, f"user:{user.id}")
        assert first.has_role("agent") and not first.has_role("admin")
        assert first.has_permission("customers:create")
        assert not first.has_permission("settings:update")
        db.session.rollback()
