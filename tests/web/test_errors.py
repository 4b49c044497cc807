"""Error pages in the layout; problem+json (RFC 9457) under /api/."""

from __future__ import annotations

from flask import Flask

from tests.conftest import host_client

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def test_unknown_page_is_an_html_404_in_the_layout(alpha_client) -> None:
    response = alpha_client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<nav" in response.text
    assert "Not Found" in response.text


def test_error_page_is_a_fragment_for_htmx(alpha_client) -> None:
    response = alpha_client.get("/no-such-page", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "<nav" not in response.text
    assert "Not Found" in response.text


def test_unknown_api_route_is_problem_json(alpha_client) -> None:
    response = alpha_client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"
    assert "errors" not in body


def test_wrong_method_on_api_keeps_allow_header(alpha_client) -> None:
    response = alpha_client.post("/api/v1/ping")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert "GET" in response.headers["Allow"]


def test_500_page_hides_the_exception(fragile_app: Flask) -> None:
    client = host_client(fragile_app, "alpha")
    page = client.get("/boom")
    assert page.status_code == 500
    assert page.mimetype == "text/html"
    assert "Internal Server Error" in page.text
    assert "secret internals" not in page.text
    api = client.get("/api/v1/test/boom")
    assert api.status_code == 500
    assert api.mimetype == "application/problem+json"
    assert api.json["status"] == 500
    assert "secret internals" not in api.text


def test_422_lists_field_errors(fragile_app: Flask) -> None:
    client = host_client(fragile_app, "alpha")
    api = client.get("/api/v1/test/invalid")
    assert api.status_code == 422
    assert api.mimetype == "application/problem+json"
    assert api.json == {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "The brokerage is not valid.",
        "errors": {"slug": ["Slug is reserved."]},
    }
    page = client.get("/invalid")
    assert page.status_code == 422
    assert "The brokerage is not valid." in page.text
    assert "Slug is reserved." in page.text


def test_error_responses_carry_vary_and_request_id(alpha_client) -> None:
    response = alpha_client.get("/no-such-page")
    assert "HX-Request" in response.vary
    assert response.headers["X-Request-ID"]
