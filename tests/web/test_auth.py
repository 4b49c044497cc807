"""Password login per tenant host, logout by POST."""

from __future__ import annotations

import html
import json
import re

from flask import Flask

from tests.conftest import PASSWORD, host_client
from tests.web.conftest import login


def test_login_page_uses_our_layout(alpha_client) -> None:
    page = alpha_client.get("/login")
    assert page.status_code == 200
    assert "Log in" in page.text
    assert "to Alpha" in page.text
    assert 'name="email"' in page.text
    assert 'name="password"' in page.text


def test_login_dashboard_logout(app: Flask, alpha) -> None:
    client = host_client(app, "alpha")
    response = login(client, "admin@alpha.example.com")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Signed in as admin@alpha.example.com" in home.text
    assert 'action="/logout"' in home.text

    assert client.get("/logout").status_code == 405  # logout is POST only
    assert client.get("/").status_code == 200

    logout = client.post("/logout")
    assert logout.status_code == 302
    assert logout.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_wrong_password_is_422_with_the_form(alpha_client) -> None:
    response = login(alpha_client, "admin@alpha.example.com", "not the password")
    assert response.status_code == 422
    assert 'name="login_user_form"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert alpha_client.get("/").status_code == 302


def test_alphas_admin_cannot_log_in_on_betas_host(beta_client) -> None:
    response = login(beta_client, "admin@alpha.example.com")
    assert response.status_code == 422
    assert beta_client.get("/").status_code == 302


def test_next_is_kept_through_login(alpha_client) -> None:
    to_login = alpha_client.get("/")
    assert to_login.status_code == 302
    form = alpha_client.get(to_login.headers["Location"]).text
    assert 'action="/login?next=' in form


def test_csrf_token_from_the_htmx_header_is_accepted(csrf_app: Flask, alpha) -> None:
    client = host_client(csrf_app, "alpha")
    page = client.get("/login").text
    header = re.search(r"<body hx-headers='([^']*)'>", page)
    assert header is not None
    token = json.loads(html.unescape(header.group(1)))["X-CSRFToken"]

    refused = login(client, "admin@alpha.example.com")
    assert refused.status_code == 400  # no token in the form
    field = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert field is not None
    logged_in = client.post(
        "/login",
        data={"email": "admin@alpha.example.com", "password": PASSWORD, "csrf_token": field[1]},
    )
    assert logged_in.status_code == 302

    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in
    # What htmx sends: the token from <body hx-headers> as X-CSRFToken.
    assert client.post("/logout", headers={"X-CSRFToken": token}).status_code == 302
    assert client.get("/").status_code == 302
