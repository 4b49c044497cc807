"""Fuzz every operation of /api/v1/openapi.json with schemathesis: no input, valid or
not, may make the API answer with a server error.

The document is read from alpha's host through the app's WSGI interface (no server),
and every generated request carries a valid bearer token of an alpha user, so the
authenticated operations are exercised past the token check. Each operation gets a
few examples of valid and of invalid input, which keeps the run well under a minute.

The operations are fuzzed in a loop rather than through `schema.parametrize()`:
schemathesis' lazy pytest fixture (`schemathesis.pytest.from_fixture`), the way to
parametrize from a schema only a fixture can load, fails on pytest 9 (it reads a
pytest internal that no longer exists).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from core.security import throttle
from core.tenancy import Tenant
from tests.conftest import host_client
from tests.security.test_tokens import make_user, user_tokens

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def base_url(app: Flask, alpha: Tenant) -> str:
    return f"http://{alpha.slug}.{app.config['SERVER_NAME']}"


@pytest.fixture(scope="module")
def api_schema(app: Flask, base_url: str) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, base_url=base_url)


@pytest.fixture(scope="module")
def access_token(app: Flask, alpha: Tenant) -> str:
    return user_tokens(host_client(app, alpha.slug), make_user(app, alpha))["access_token"]


@pytest.fixture
def unthrottled(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fuzzed logins fail by the hundred: lift the sign-in limits (so the token endpoint
    is fuzzed, not its 429) and clear the counts after, for the tests that follow."""
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_IP", "100000 per minute")
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_ACCOUNT", "100000 per minute")
    yield
    throttle.limiter(app).reset()


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, token: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            checks=[not_a_server_error],
        )

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_with_a_server_error(
    api_schema: Any, base_url: str, access_token: str, unthrottled: None, mode: GenerationMode
) -> None:
    failures: dict[str, str] = {}
    fuzzed = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        fuzzed.append(operation.label)
        try:
            _fuzz(operation, mode, base_url, access_token)
        except Unsatisfiable:
            # An operation that takes no input has no invalid input (GET /ping).
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation is fuzzed; all failures are reported
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert not failures, "\n\n".join(f"{label}\n{error}" for label, error in failures.items())
    assert "POST /auth/token" in fuzzed and "GET /me" in fuzzed


def test_the_fuzzed_document_is_the_apis(api_schema: Any) -> None:
    """A guard against fuzzing an empty or foreign document."""
    paths = set(api_schema.raw_schema["paths"])
    assert {"/auth/token", "/auth/refresh", "/auth/revoke", "/me", "/ping"} <= paths
