"""The audit screen and its CSV export: filters, keyset pages, htmx, RBAC, tenancy."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask_security import hash_password
from sqlalchemy import select

from core import audit
from core.audit import AuditEntry
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import PASSWORD, HostClient, host_client, make_tenant
from tests.web.conftest import login

BULK = 55  # more than one page of 50


@dataclass(frozen=True)
class Screen:
    tenant: Tenant
    manager_id: int
    manager: str
    agent: str


def _user(app: Flask, email: str, role: str) -> int:
    user = app.extensions["security"].datastore.create_user(
        email=email, password=hash_password(PASSWORD), roles=[role]
    )
    db.session.commit()
    return user.id


@pytest.fixture(scope="module")
def screen(app: Flask) -> Screen:
    """A tenant of this module: a manager (has audit:read), an agent (has not) and
    a known set of entries."""
    tenant = make_tenant(app, f"audit-screen-{uuid.uuid4().hex[:8]}")
    with app.app_context(), tenant_context(tenant):
        manager_id = _user(app, "boss@screen.example.com", "manager")
        _user(app, "agent@screen.example.com", "agent")
        with audit.acting_as(f"user:{manager_id}"):
            for n in range(BULK):
                audit.record("test.bulk", entity="policies", entity_id=n, after={"n": n})
        audit.record(
            "test.system",
            entity="customers",
            entity_id="c-1",
            before={"name": '=HYPERLINK("http://evil.example")'},
            after={"name": "Ann"},
        )
        audit.record("test.formula", entity="claims", entity_id="=SUM(A1:A9)")
        db.session.commit()
    return Screen(tenant, manager_id, "boss@screen.example.com", "agent@screen.example.com")


def signed_in(app: Flask, screen: Screen, email: str) -> HostClient:
    client = host_client(app, screen.tenant.slug)
    assert login(client, email).status_code == 302
    return client


@pytest.fixture
def manager(app: Flask, screen: Screen) -> HostClient:
    return signed_in(app, screen, screen.manager)


def shown(html: str) -> list[tuple[int, str, str]]:
    """(id, action, actor) of every entry row on the page."""
    return [
        (int(i), action, actor)
        for i, action, actor in re.findall(
            r'<tr data-entry-id="(\d+)" data-action="([^"]*)" data-actor="([^"]*)">', html
        )
    ]


def older_link(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next"', html)
    return found[1].replace("&amp;", "&") if found else None


# --- Access -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/audit", "/audit.csv"])
def test_an_agent_is_refused(app: Flask, screen: Screen, path: str) -> None:
    agent = signed_in(app, screen, screen.agent)
    response = agent.get(path)
    assert response.status_code == 403
    assert "test.bulk" not in response.text


@pytest.mark.parametrize("path", ["/audit", "/audit.csv"])
def test_nobody_signed_in_is_sent_to_log_in(app: Flask, screen: Screen, path: str) -> None:
    response = host_client(app, screen.tenant.slug).get(path)
    assert response.status_code in (302, 401)
    assert "test.bulk" not in response.text
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]


def test_the_menu_offers_the_screen_only_to_holders(app: Flask, screen: Screen) -> None:
    link = 'href="/audit"'
    assert link in signed_in(app, screen, screen.manager).get("/").text
    assert link not in signed_in(app, screen, screen.agent).get("/").text


def test_the_screen_is_not_on_the_apex(apex_client) -> None:
    assert apex_client.get("/audit").status_code == 404


# --- Listing ------------------------------------------------------------------------


def test_newest_first_in_keyset_pages(manager: HostClient) -> None:
    first = manager.get("/audit?action=test.bulk")
    assert first.status_code == 200
    page_one = shown(first.text)
    assert len(page_one) == 50
    ids = [i for i, _, _ in page_one]
    assert ids == sorted(ids, reverse=True)
    link = older_link(first.text)
    assert link is not None and f"before={ids[-1]}" in link and "action=test.bulk" in link

    second = manager.get(link)
    page_two = [i for i, _, _ in shown(second.text)]
    assert len(page_two) == BULK - 50
    assert max(page_two) < min(ids)
    assert older_link(second.text) is None
    assert 'href="/audit?action=test.bulk"' in second.text  # back to the newest


def test_filters_by_user_entity_action_and_date(manager: HostClient, screen: Screen) -> None:
    by_user = shown(manager.get(f"/audit?user={screen.manager}&action=test").text)
    assert by_user and {actor for _, _, actor in by_user} == {f"user:{screen.manager_id}"}
    assert all(action == "test.bulk" for _, action, _ in by_user)

    by_entity = shown(manager.get("/audit?entity=customers").text)
    assert [(action, actor) for _, action, actor in by_entity] == [("test.system", "system")]

    # An action filter matches the action or everything under it, not a lookalike.
    auth = shown(manager.get("/audit?action=auth").text)
    assert auth and all(action.startswith("auth.") for _, action, _ in auth)
    assert not shown(manager.get("/audit?action=test.bul").text)

    today = datetime.now(UTC).date()
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)
    assert shown(manager.get(f"/audit?entity=customers&date_from={today}&date_to={today}").text)
    assert not shown(manager.get(f"/audit?entity=customers&date_from={tomorrow}").text)
    assert not shown(manager.get(f"/audit?entity=customers&date_to={yesterday}").text)
    assert "No entries match" in manager.get(f"/audit?date_from={tomorrow}").text

    unknown = manager.get("/audit?user=nobody@screen.example.com")
    assert unknown.status_code == 200 and not shown(unknown.text)


def test_the_screen_shows_who_and_what_changed(manager: HostClient, screen: Screen) -> None:
    page = manager.get("/audit?entity=policies").text
    assert screen.manager in page  # the email, not only user:<id>
    assert "<code>n</code>:" in page


def test_htmx_swaps_only_the_results(manager: HostClient) -> None:
    full = manager.get("/audit?entity=customers")
    assert "<html" in full.text and 'role="search"' in full.text

    partial = manager.get(
        "/audit?entity=customers", headers={"HX-Request": "true", "HX-Target": "audit-results"}
    )
    assert partial.status_code == 200
    assert '<section id="audit-results">' in partial.text
    assert "<html" not in partial.text and 'role="search"' not in partial.text
    assert [a for _, a, _ in shown(partial.text)] == ["test.system"]
    assert "HX-Request" in partial.headers.get("Vary", "")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date_from=not-a-date", "Not a valid date"),
        ("date_from=2030-01-02&date_to=2030-01-01", "before the start date"),
        ("before=0", "Number must be at least 1"),
    ],
)
def test_bad_filters_are_422_with_the_reason(manager: HostClient, query: str, message: str) -> None:
    response = manager.get(f"/audit?{query}")
    assert response.status_code == 422
    assert message in response.text
    assert 'aria-invalid="true"' in response.text or "before=0" in query
    assert not shown(response.text)
    assert manager.get(f"/audit.csv?{query}").status_code == 422


# --- Export -------------------------------------------------------------------------


def test_csv_export_has_every_match_and_is_audited(
    app: Flask, manager: HostClient, screen: Screen
) -> None:
    response = manager.get("/audit.csv?action=test.bulk", headers={"X-Request-ID": "export-1"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    exported = list(csv.DictReader(io.StringIO(response.text)))
    assert len(exported) == BULK  # not one page: all of them
    assert {row["user"] for row in exported} == {screen.manager}
    assert {row["actor"] for row in exported} == {f"user:{screen.manager_id}"}
    assert [int(row["id"]) for row in exported] == sorted(
        (int(row["id"]) for row in exported), reverse=True
    )

    with app.app_context(), tenant_context(screen.tenant):
        export = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "audit.export")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert export is not None
    assert (export.actor, export.request_id, export.actor_ip) == (
        f"user:{screen.manager_id}",
        "export-1",
        "127.0.0.1",
    )
    assert export.details == {"format": "csv", "filters": {"action": "test.bulk"}}


def test_csv_cells_cannot_become_formulas(manager: HostClient) -> None:
    (row,) = csv.DictReader(io.StringIO(manager.get("/audit.csv?entity=claims").text))
    assert (row["action"], row["entity_id"]) == ("test.formula", "'=SUM(A1:A9)")
    (row,) = csv.DictReader(io.StringIO(manager.get("/audit.csv?entity=customers").text))
    assert '"before": "=HYPERLINK' in row["changes"]  # inside JSON: not at a cell's start


# --- Tenancy ------------------------------------------------------------------------


def test_another_tenants_entries_never_show(
    app: Flask, beta: Tenant, screen: Screen, manager: HostClient
) -> None:
    with app.app_context(), tenant_context(beta):
        audit.record("test.beta_marker", entity="customers", details={"note": "beta only"})
        db.session.commit()
    assert not shown(manager.get("/audit?action=test.beta_marker").text)
    assert "beta only" not in manager.get("/audit?entity=customers").text
    exported = manager.get("/audit.csv").text
    assert "test.beta_marker" not in exported and "beta only" not in exported
    # and the manager's session means nothing on beta's host
    assert host_client(app, "beta").get("/audit").status_code in (302, 401)
