"""Fixtures for the customers tests: API callers of each kind, with bearer tokens.

Callers are made fresh for this package (users with one default role; agents with an
agent profile), so other packages' users and their data do not matter here. Customers
created through the API are committed: names are random, so no two tests' customers
look like duplicates of each other.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from core.agents.models import Agent
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import host_client
from tests.security.test_tokens import make_user, user_tokens


@dataclass(frozen=True)
class Caller:
    """Someone calling the API on one tenant's host."""

    app: Flask
    slug: str
    user_id: int
    token: str
    agent_id: int | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        client = host_client(self.app, self.slug)
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)


def make_caller(app: Flask, tenant: Tenant, role: str, *, agent: bool = False) -> Caller:
    user = make_user(app, tenant, (role,))
    agent_id = None
    if agent:
        with app.app_context(), tenant_context(tenant):
            profile = Agent(
                user_id=user.id,
                licence_number=f"LIC-{user.id}",
                licence_expires_on=date(2099, 12, 31),
            )
            db.session.add(profile)
            db.session.commit()
            agent_id = profile.id
    token = user_tokens(host_client(app, tenant.slug), user)["access_token"]
    return Caller(app, tenant.slug, user.id, token, agent_id)


@pytest.fixture(scope="session")
def manager(app: Flask, alpha: Tenant) -> Caller:
    return make_caller(app, alpha, "manager")


@pytest.fixture(scope="session")
def admin(app: Flask, alpha: Tenant) -> Caller:
    return make_caller(app, alpha, "admin")


@pytest.fixture(scope="session")
def agent(app: Flask, alpha: Tenant) -> Caller:
    return make_caller(app, alpha, "agent", agent=True)


@pytest.fixture(scope="session")
def other_agent(app: Flask, alpha: Tenant) -> Caller:
    return make_caller(app, alpha, "agent", agent=True)


@pytest.fixture(scope="session")
def beta_manager(app: Flask, beta: Tenant) -> Caller:
    return make_caller(app, beta, "manager")


def word(length: int = 8) -> str:
    """A random name-like word: random letters make trigram-unrelated names."""
    return random.choice(string.ascii_uppercase) + "".join(
        random.choices(string.ascii_lowercase, k=length - 1)
    )


def digits(count: int) -> str:
    return "".join(random.choices(string.digits, k=count))


def person(**fields: Any) -> dict[str, Any]:
    """A valid new person, unique: random names, email, phone and national id."""
    first, last = word(), word()
    return {
        "kind": "person",
        "first_name": first,
        "last_name": last,
        "date_of_birth": (date(1940, 1, 1) + timedelta(days=random.randint(0, 25_000))).isoformat(),
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "phone": f"+44 20 {digits(4)} {digits(4)}",
        "national_id": f"{digits(3)}-{digits(2)}-{digits(4)}",
        **fields,
    }


def created(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    response = caller.call("POST", "/customers?force=true", json=body)
    assert response.status_code == 201, response.json
    return response.json
