"""/api/v1: JSON per tenant host, and its OpenAPI 3 document."""

from __future__ import annotations

import pytest
from flask import Flask
from openapi_spec_validator import validate

from web.api import spec
from web.api.openapi import openapi_path


def test_ping_answers_with_the_hosts_tenant(alpha_client, beta_client) -> None:
    assert alpha_client.get("/api/v1/ping").json == {"status": "ok", "tenant": "alpha"}
    assert beta_client.get("/api/v1/ping").json == {"status": "ok", "tenant": "beta"}


@pytest.fixture
def document(alpha_client) -> dict:
    response = alpha_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def test_openapi_document_is_valid_openapi_3(document: dict) -> None:
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/api/v1"}]
    assert "/ping" in document["paths"]


def test_openapi_declares_problem_json_and_bearer_jwt(document: dict) -> None:
    components = document["components"]
    assert components["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["security"] == [{"bearerAuth": []}]
    problem = components["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= problem["properties"].keys()
    error = components["responses"]["Problem"]["content"]["application/problem+json"]
    assert error["schema"] == {"$ref": "#/components/schemas/Problem"}
    ping = document["paths"]["/ping"]["get"]
    assert ping["security"] == []  # public until tokens arrive
    assert ping["responses"]["default"] == {"$ref": "#/components/responses/Problem"}


def test_every_api_route_is_documented_and_nothing_else(app: Flask, document: dict) -> None:
    routed = {
        (openapi_path(rule.rule.removeprefix("/api/v1"))[0], method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routed == documented
    assert documented == {(op.path, op.method) for op in spec.operations}


def test_path_parameters_become_openapi_templates() -> None:
    path, params = openapi_path("/jobs/<uuid:job_id>/items/<int:n>")
    assert path == "/jobs/{job_id}/items/{n}"
    assert [(p["name"], p["schema"]) for p in params] == [
        ("job_id", {"type": "string", "format": "uuid"}),
        ("n", {"type": "integer"}),
    ]
