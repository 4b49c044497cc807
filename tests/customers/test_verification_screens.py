"""The checks section of a customer's page: staff record a manual check with notes and
an evidence file (htmx; 422 with the form's errors, nothing written), the results show
on the page and its timeline, and evidence downloads need customers:export and reach."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from core.agents.models import Agent
from core.customers.verification import CustomerVerification, evidence_dir
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import HostClient
from tests.customers.conftest import make_team, word
from tests.security.conftest import audit_entries, last_audit_id, sign_in
from tests.security.test_tokens import make_user

HTMX = {"HX-Request": "true", "HX-Target": "checks"}


@dataclass(frozen=True)
class Team:
    manager: HostClient
    agent: HostClient
    other_manager: HostClient
    agent_id: int


def _agent(app: Flask, tenant: Tenant, team_id: int | None) -> tuple[str, int]:
    user = make_user(app, tenant, ("agent",))
    with app.app_context(), tenant_context(tenant):
        profile = Agent(
            user_id=user.id,
            team_id=team_id,
            licence_number=f"LIC-{user.id}",
            licence_expires_on=date(2099, 1, 1),
        )
        db.session.add(profile)
        db.session.commit()
        return user.email, profile.id


@pytest.fixture(scope="module")
def team(app: Flask, alpha: Tenant) -> Team:
    """An agent in a team, its manager, and the manager of another team."""
    manager = make_user(app, alpha, ("manager",))
    other = make_user(app, alpha, ("manager",))
    team_id = make_team(app, alpha, manager_id=manager.id)
    make_team(app, alpha, manager_id=other.id)
    email, agent_id = _agent(app, alpha, team_id)
    return Team(
        sign_in(app, alpha.slug, manager.email),
        sign_in(app, alpha.slug, email),
        sign_in(app, alpha.slug, other.email),
        agent_id,
    )


def _customer(client: HostClient) -> int:
    form = {"kind": "person", "first_name": word(), "last_name": word(), "force": "1"}
    response = client.post("/customers/new", data=form)
    assert response.status_code == 303, response.text
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _checks(app: Flask, tenant: Tenant, customer_id: int) -> list[CustomerVerification]:
    with app.app_context(), tenant_context(tenant):
        rows = db.session.scalars(
            select(CustomerVerification)
            .where(CustomerVerification.customer_id == customer_id)
            .order_by(CustomerVerification.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


def _evidence_files(app: Flask, tenant: Tenant) -> set[Path]:
    with app.test_request_context(), tenant_context(tenant):
        folder = evidence_dir()
    return set(folder.glob("*")) if folder.exists() else set()


def _record(client: HostClient, customer_id: int, **fields: object):  # type: ignore[no-untyped-def]
    form = {"kind": "identity", "outcome": "passed", "reference": "", "notes": "", **fields}
    return client.post(f"/customers/{customer_id}/verifications", data=form, headers=HTMX)


def test_an_agent_records_a_check_with_evidence_and_sees_it_on_the_page(
    app: Flask, alpha: Tenant, team: Team
) -> None:
    customer_id = _customer(team.agent)
    page = team.agent.get(f"/customers/{customer_id}").text
    assert 'id="checks"' in page and "No checks recorded." in page
    assert 'id="check-form"' in page and 'hx-encoding="multipart/form-data"' in page
    mark = last_audit_id(app, alpha)
    scan = b"%PDF-1.4 driving licence " + word().encode()

    response = _record(
        team.agent,
        customer_id,
        outcome="referred",
        reference="DL-7731",
        notes="Photo is old; asked for a second document.",
        evidence=(io.BytesIO(scan), "Licence scan.PDF"),
    )
    assert response.status_code == 200
    # htmx gets the section alone, the new check in it, and the form ready again.
    assert (
        response.text.lstrip().startswith('<section id="checks">') and "<html" not in response.text
    )
    assert "Check recorded." in response.text
    (row,) = _checks(app, alpha, customer_id)
    assert (row.kind, row.service, row.outcome, row.reference) == (
        "identity",
        "manual",
        "referred",
        "DL-7731",
    )
    assert row.evidence["notes"] == "Photo is old; asked for a second document."
    assert (row.evidence["name"], row.evidence["size"]) == ("Licence scan.PDF", len(scan))
    with app.test_request_context(), tenant_context(alpha):
        assert (evidence_dir() / row.evidence["file"]).read_bytes() == scan
    shown = response.text.split(f'id="check-{row.id}"', 1)[1].split("</tr>", 1)[0]
    for text in ("identity", "manual", "referred", "DL-7731", "Photo is old"):
        assert text in shown
    # An agent holds no customers:export: the file is on record, not theirs to open.
    assert "File on record" in shown and "/evidence" not in shown
    (entry,) = audit_entries(app, alpha, "customers.verify", mark)
    assert (entry.entity, entry.entity_id) == ("customers", str(customer_id))
    assert "DL-7731" not in str(entry.details) and "Photo" not in str(entry.details)

    page = team.agent.get(f"/customers/{customer_id}").text
    assert f'id="check-{row.id}"' in page
    assert "customers.verify" in page.split('id="timeline"', 1)[1]


def test_without_htmx_the_form_posts_and_comes_back_to_the_page(
    app: Flask, alpha: Tenant, team: Team
) -> None:
    customer_id = _customer(team.agent)
    form = {"kind": "credit", "outcome": "failed", "reference": "CRA-1", "notes": ""}
    response = team.agent.post(f"/customers/{customer_id}/verifications", data=form)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/customers/{customer_id}#checks"
    (row,) = _checks(app, alpha, customer_id)
    assert (row.kind, row.outcome, row.evidence) == ("credit", "failed", None)

    bad = team.agent.post(f"/customers/{customer_id}/verifications", data={**form, "kind": "x"})
    assert bad.status_code == 422 and "<html" in bad.text
    assert 'id="check-kind-errors"' in bad.text
    assert len(_checks(app, alpha, customer_id)) == 1


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"kind": "passport", "outcome": "maybe"}, ("kind", "outcome")),
        ({"reference": "R" * 201, "notes": "N" * 2001}, ("reference", "notes")),
        ({"evidence": (io.BytesIO(b""), "empty.pdf")}, ("evidence",)),
        ({"evidence": (io.BytesIO(b"x" * (10 * 1024 * 1024 + 1)), "big.pdf")}, ("evidence",)),
    ],
)
def test_bad_input_is_422_with_the_form_and_nothing_written(
    app: Flask, alpha: Tenant, team: Team, fields: dict, errors: tuple[str, ...]
) -> None:
    customer_id = _customer(team.agent)
    files, mark = _evidence_files(app, alpha), last_audit_id(app, alpha)
    response = _record(team.agent, customer_id, **fields)
    assert response.status_code == 422
    assert response.text.lstrip().startswith('<section id="checks">')
    assert "The check was not recorded" in response.text
    for name in errors:
        assert f'id="check-{name}-errors"' in response.text
        assert f'aria-describedby="check-{name}-errors"' in response.text
    if "notes" in errors:  # what was typed comes back to be corrected
        assert "N" * 2001 in response.text
    assert _checks(app, alpha, customer_id) == []
    assert audit_entries(app, alpha, "customers.verify", mark) == []
    assert _evidence_files(app, alpha) == files


def test_evidence_downloads_need_customers_export_and_reach(
    app: Flask, alpha: Tenant, beta: Tenant, team: Team
) -> None:
    customer_id = _customer(team.agent)
    scan = b"passport " + word().encode()
    _record(team.agent, customer_id, evidence=(io.BytesIO(scan), "passport.png"))
    _record(team.agent, customer_id, outcome="failed")  # no file
    with_file, without_file = _checks(app, alpha, customer_id)
    path = f"/customers/{customer_id}/verifications/{with_file.id}/evidence"

    # The team's manager holds customers:export and reaches the customer.
    page = team.manager.get(f"/customers/{customer_id}").text
    assert f'href="{path}"' in page and ">passport.png<" in page
    mark = last_audit_id(app, alpha)
    download = team.manager.get(path)
    assert download.status_code == 200 and download.data == scan
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "passport.png" in download.headers["Content-Disposition"]
    assert download.headers["Cache-Control"] == "private, no-store"
    (entry,) = audit_entries(app, alpha, "customers.evidence", mark)
    assert entry.details == {"verification_id": with_file.id}

    # The agent who recorded it may not open it; another team's manager cannot reach it.
    assert team.agent.get(path).status_code == 403
    assert team.other_manager.get(path).status_code == 404
    assert team.other_manager.get(f"/customers/{customer_id}").status_code == 404
    beta_manager = sign_in(app, beta.slug, make_user(app, beta, ("manager",)).email)
    assert beta_manager.get(path).status_code == 404
    # A check without a file, or one under another customer's address: nothing there.
    no_file = f"/customers/{customer_id}/verifications/{without_file.id}/evidence"
    assert team.manager.get(no_file).status_code == 404
    other_customer = _customer(team.agent)
    wrong = f"/customers/{other_customer}/verifications/{with_file.id}/evidence"
    assert team.manager.get(wrong).status_code == 404
    assert audit_entries(app, alpha, "customers.evidence", entry.id) == []


def test_a_customer_outside_the_book_cannot_be_checked(
    app: Flask, alpha: Tenant, team: Team
) -> None:
    customer_id = _customer(team.agent)
    outsider_email, _ = _agent(app, alpha, None)
    outsider = sign_in(app, alpha.slug, outsider_email)
    files = _evidence_files(app, alpha)
    response = _record(outsider, customer_id, evidence=(io.BytesIO(b"scan"), "a.pdf"))
    assert response.status_code == 404
    assert _checks(app, alpha, customer_id) == []
    assert _evidence_files(app, alpha) == files
