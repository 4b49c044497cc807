"""Full pages for browsers, fragments for htmx, static files, request ids and logs."""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask

from core.logs import ContextFilter
from tests.web.conftest import client_for_host
from web import assets
from web.assets import DIST_FILES


def test_full_page_loads_our_assets_and_sends_csrf_in_htmx_header(alpha_client) -> None:
    response = alpha_client.get("/login")
    assert response.status_code == 200
    assert "HX-Request" in response.vary
    page = response.text
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert '<script src="/static/dist/htmx.min.js"' in page
    assert 'href="/static/dist/pico.min.css"' in page
    assert 'href="/static/app.css"' in page
    body = re.search(r"<body hx-headers='([^']*)'>", page)
    assert body is not None
    assert '"X-CSRFToken": "' in body.group(1).replace("&#34;", '"')
    assert "Alpha" in page  # the tenant's name in the navigation


def test_htmx_request_gets_the_content_block_only(alpha_client) -> None:
    response = alpha_client.get("/login", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Request" in response.vary
    assert "<html" not in response.text
    assert "<nav" not in response.text
    assert 'name="login_user_form"' in response.text


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_boosted_and_history_restore_get_the_full_page(alpha_client, header: str) -> None:
    response = alpha_client.get("/login", headers={"HX-Request": "true", header: "true"})
    assert "<html" in response.text


def test_apex_navigation_offers_signup(apex_client) -> None:
    page = apex_client.get("/").text
    assert 'href="/signup"' in page
    assert "Power Buyer" in page


@pytest.mark.parametrize(
    "host", ["localhost:5000", "alpha.localhost:5000", "nosuch.localhost:5000"]
)
def test_static_files_on_every_host(app: Flask, host: str) -> None:
    client = client_for_host(app, host)
    with client.get("/static/app.css") as css:
        assert css.status_code == 200
        assert css.mimetype == "text/css"
    for name in DIST_FILES:
        with client.get(f"/static/dist/{name}") as built:
            assert built.status_code == 200, f"{name}: run `npm ci && npm run build`"
    with client.get("/static/dist/htmx.min.js") as htmx:
        assert "htmx" in htmx.text


def test_static_does_not_escape_its_folder(apex_client) -> None:
    with apex_client.get("/static/%2e%2e/health.py") as response:
        assert response.status_code == 404


def test_request_id_is_generated_or_echoed(apex_client) -> None:
    generated = apex_client.get("/").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (
        apex_client.get("/", headers={"X-Request-ID": "lb-1234"}).headers["X-Request-ID"]
        == "lb-1234"
    )
    forged = apex_client.get("/", headers={"X-Request-ID": "spaces and {braces} are not an id"})
    assert forged.headers["X-Request-ID"] != "spaces and {braces} are not an id"


def test_one_log_line_per_request_with_tenant_and_request_id(alpha_client, caplog) -> None:
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO, logger="powerbuyer.request"):
        alpha_client.get("/login?next=/secret-token", headers={"X-Request-ID": "req-42"})
    lines = [r for r in caplog.records if r.name == "powerbuyer.request"]
    assert len(lines) == 1
    record = lines[0]
    assert re.fullmatch(r"GET /login 200 \d+\.\dms", record.getMessage())
    assert record.tenant == "alpha"
    assert record.request_id == "req-42"


def test_refused_requests_are_logged_too(app: Flask, caplog) -> None:
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.INFO, logger="powerbuyer.request"):
        client_for_host(app, "nosuch.localhost:5000").get("/", headers={"X-Request-ID": "r-9"})
    (record,) = [r for r in caplog.records if r.name == "powerbuyer.request"]
    assert record.getMessage().startswith("GET / 404 ")
    assert record.request_id == "r-9"


def test_missing_build_is_a_warning_not_a_failure(monkeypatch, tmp_path, caplog) -> None:
    (tmp_path / "app.css").write_text("body {}")
    monkeypatch.setattr(assets, "STATIC", tmp_path)
    bare = Flask("bare", static_folder=None)
    with caplog.at_level(logging.WARNING, logger="web.assets"):
        assets.init_app(bare)
    (warning,) = [r for r in caplog.records if r.name == "web.assets"]
    assert "htmx.min.js, pico.min.css" in warning.getMessage()
    assert "npm run build" in warning.getMessage()
    with bare.test_client().get("/static/app.css") as ours:
        assert ours.status_code == 200
