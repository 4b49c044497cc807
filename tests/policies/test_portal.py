"""The customer portal: a customer invited by staff joins, signs in and sees their own
policies only (another customer's is 404, staff screens 403), and answers a renewal
offer. And the table behind it, as its migration creates it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import select

import core.models  # noqa: F401  (every tenant table on Base.metadata)
from core import settings
from core.customers.portal import PortalAccount, PortalInvitation
from core.db import Base, db, scope_connection
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests import smtp
from tests.conftest import host_client
from tests.policies.conftest import Staff, issued, make_staff, new_customer
from tests.policies.test_renewals import offer_job, offers
from tests.security.conftest import audit_entries, last_audit_id, sign_in

PASSWORD = "tulips in the harbour at dawn"
MINUS = "\u2212"


@pytest.fixture
def mailbox(app: Flask) -> Iterator[smtp.Mailbox]:
    with smtp.receiving(app) as box:
        yield box


def test_migration_0010_creates_the_tables_the_models_declare(app: Flask, cover: Tenant) -> None:
    mine = {"portal_accounts", "portal_invitations"}

    def include(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or table.name in mine

    with app.app_context(), db.engine.begin() as conn:
        scope_connection(conn, cover)
        context = MigrationContext.configure(
            conn,
            opts={"include_object": include, "compare_type": True, "compare_server_default": True},
        )
        assert compare_metadata(context, Base.metadata) == []


def invited_customer(
    app: Flask, cover: Tenant, agent: Staff, mailbox: smtp.Mailbox
) -> tuple[dict, str]:
    """A customer of `agent`'s book invited to the portal, joined: (customer, email)."""
    email = f"portal-{uuid.uuid4().hex[:8]}@example.com"
    customer = new_customer(agent, email=email)
    browser = agent.browser()
    mark = last_audit_id(app, cover)
    sent = browser.post(f"/customers/{customer['id']}/portal-invitation")
    assert sent.status_code == 303, sent.text
    assert [e.entity_id for e in audit_entries(app, cover, "customers.portal_invite", mark)] == [
        str(customer["id"])
    ]
    (link,) = [u for u in smtp.links_in(mailbox.wait_for(email)) if "/portal/join/" in u]
    path = link.removeprefix(f"http://{cover.slug}.{app.config['SERVER_NAME']}")
    assert path.startswith("/portal/join/")
    visitor = host_client(app, cover.slug)
    assert visitor.get(path).status_code == 200
    mismatch = visitor.post(path, data={"password": PASSWORD, "password_confirm": "other"})
    assert mismatch.status_code == 422
    joined = visitor.post(path, data={"password": PASSWORD, "password_confirm": PASSWORD})
    assert joined.status_code == 303
    # The link works once.
    assert visitor.get(path).status_code == 410
    return customer, email


def test_an_invited_customer_joins_and_sees_only_their_own_policies(
    app: Flask, cover: Tenant, agent: Staff, mailbox: smtp.Mailbox, products: dict
) -> None:
    customer, email = invited_customer(app, cover, agent, mailbox)
    own = issued(agent, customer["id"])
    other = issued(agent, new_customer(agent)["id"])
    with app.app_context(), tenant_context(cover):
        user = db.session.scalars(select(User).where(User.email == email)).one()
        account = db.session.get(PortalAccount, user.id)
        assert account is not None and account.customer_id == customer["id"]
        assert [role.name for role in user.roles] == ["customer"]

    client = host_client(app, cover.slug)
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302
    mine = client.get("/portal")
    assert mine.status_code == 200
    assert f'id="my-policy-{own["id"]}"' in mine.text
    assert f'id="my-policy-{other["id"]}"' not in mine.text
    assert own["number"] in mine.text
    page = client.get(f"/portal/policies/{own['id']}")
    assert page.status_code == 200 and 'id="version-1"' in page.text
    assert client.get(f"/portal/policies/{other['id']}").status_code == 404
    # Staff screens are not theirs.
    for path in (
        "/policies",
        f"/policies/{own['id']}",
        "/customers",
        f"/customers/{customer['id']}",
    ):
        assert client.get(path).status_code == 403, path

    # Invited once: a second invitation is refused.
    again = agent.browser().post(f"/customers/{customer['id']}/portal-invitation")
    assert again.status_code == 422
    assert "already has a portal account" in again.text


def _portal_user(app: Flask, cover: Tenant, customer_id: int) -> str:
    """A customer-role user linked to `customer_id` directly; returns the email."""
    staff = make_staff(app, cover, "customer")
    with app.app_context(), tenant_context(cover):
        db.session.add(PortalAccount(user_id=staff.user_id, customer_id=customer_id))
        db.session.commit()
    return staff.email


def test_a_customer_answers_their_renewal_offer_in_the_portal(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    policy = issued(agent, customer["id"])
    neighbour = issued(
        agent, new_customer(agent)["id"], start=date.fromisoformat(policy["start_date"])
    )
    end = date.fromisoformat(policy["end_date"])
    offer_job(app, cover, end - timedelta(days=12))
    (offer,) = offers(agent, policy["id"])
    (neighbours,) = offers(agent, neighbour["id"])
    client = sign_in(app, cover.slug, _portal_user(app, cover, customer["id"]))

    page = client.get(f"/portal/policies/{policy['id']}").text
    assert f"No-claim discount 0% \u2192 10%: {MINUS}150.00" in page
    # Someone else's offer is out of reach, and staff's own routes are not theirs.
    assert client.post(f"/portal/renewal-offers/{neighbours['id']}/accept").status_code == 404
    assert client.post(f"/renewal-offers/{offer['id']}/accept").status_code == 403

    accepted = client.post(f"/portal/renewal-offers/{offer['id']}/accept")
    assert accepted.status_code == 303
    renewed = client.get(accepted.headers["Location"])
    assert renewed.status_code == 200 and "1,350.00 EUR" in renewed.text
    (after,) = offers(agent, policy["id"])
    with app.app_context(), tenant_context(cover):
        user_id = db.session.scalar(
            select(PortalAccount.user_id).where(PortalAccount.customer_id == customer["id"])
        )
    assert after["status"] == "accepted"
    assert client.post(f"/portal/renewal-offers/{offer['id']}/decline").status_code == 409
    entries = audit_entries(app, cover, "policies.renewal_accept")
    assert any(e.actor == f"user:{user_id}" and e.entity_id == str(policy["id"]) for e in entries)


def test_a_widened_book_does_not_widen_a_customers_reach(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    own = issued(agent, customer["id"])
    other = issued(agent, new_customer(agent)["id"])
    client = sign_in(app, cover.slug, _portal_user(app, cover, customer["id"]))
    with app.app_context(), tenant_context(cover):
        settings.set("agent_book_scope", "all")
        db.session.commit()
    try:
        listed = client.get("/portal").text
        assert f'id="my-policy-{own["id"]}"' in listed
        assert f'id="my-policy-{other["id"]}"' not in listed
        assert client.get(f"/portal/policies/{other['id']}").status_code == 404
    finally:
        with app.app_context(), tenant_context(cover):
            settings.set("agent_book_scope", "own")
            db.session.commit()


def test_a_portal_invitation_is_only_for_a_customer_in_reach(
    app: Flask, cover: Tenant, agent: Staff, other_agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    assert (
        other_agent.browser().post(f"/customers/{customer['id']}/portal-invitation").status_code
        == 404
    )
    with app.app_context(), tenant_context(cover):
        assert (
            db.session.scalar(
                select(PortalInvitation).where(PortalInvitation.customer_id == customer["id"])
            )
            is None
        )
