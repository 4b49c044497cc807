"""The customers screens: search fragment and page, masking by permission, the new
customer form (422, duplicates, save anyway), reach (404) and the activity timeline."""

from __future__ import annotations

import random
import string

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.customers.models import Customer
from core.customers.queries import PAGE_SIZE
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import HostClient
from tests.customers.conftest import manage_agents
from tests.products.fixtures import Staff, make_staff
from tests.security.conftest import sign_in


@pytest.fixture(scope="module")
def agent(app: Flask, alpha: Tenant) -> Staff:
    return make_staff(app, alpha, "agent", agent=True)


@pytest.fixture(scope="module")
def other_agent(app: Flask, alpha: Tenant) -> Staff:
    return make_staff(app, alpha, "agent", agent=True)


@pytest.fixture(scope="module")
def manager(app: Flask, alpha: Tenant, agent: Staff) -> Staff:
    """The manager of `agent`'s team: a manager sees the customers of their subtree."""
    staff = make_staff(app, alpha, "manager")
    manage_agents(app, alpha, staff.email, [agent.agent_id])
    return staff


def _word() -> str:
    return random.choice(string.ascii_uppercase) + "".join(
        random.choices(string.ascii_lowercase, k=9)
    )


def _person(**fields: str) -> dict[str, str]:
    first, last = _word(), _word()
    digits = "".join(random.choices(string.digits, k=9))
    return {
        "kind": "person",
        "first_name": first,
        "last_name": last,
        "date_of_birth": "1980-05-17",
        "email": f"{first.lower()}.{last.lower()}@example.com",
        "phone": f"+44 20 {digits[:4]} {digits[4:8]}",
        "national_id": f"{digits[:3]}-{digits[3:5]}-{digits[5:]}9",
        **fields,
    }


def _create(client: HostClient, form: dict[str, str]) -> int:
    response = client.post("/customers/new", data={**form, "force": "1"})
    assert response.status_code == 303, response.text
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _count(app: Flask, tenant: Tenant, last_name: str) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(
            select(func.count()).select_from(Customer).where(Customer.last_name == last_name)
        )


def test_search_answers_a_fragment_to_htmx_and_a_page_otherwise(app, alpha, agent) -> None:
    client = sign_in(app, "alpha", agent.email)
    form = _person()
    customer_id = _create(client, form)
    path = f"/customers?q={form['last_name']}"

    page = client.get(path)
    assert page.status_code == 200
    assert "<html" in page.text and 'hx-trigger="input changed delay:300ms, search"' in page.text
    assert f'id="customer-{customer_id}"' in page.text

    fragment = client.get(path, headers={"HX-Request": "true", "HX-Target": "customer-results"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'name="q"' not in fragment.text
    assert fragment.text.lstrip().startswith('<section id="customer-results">')
    assert f'id="customer-{customer_id}"' in fragment.text

    # National id: found by its exact value, through the blind index.
    exact = client.get(f"/customers?q={form['national_id']}")
    assert f'id="customer-{customer_id}"' in exact.text
    nothing = client.get(f"/customers?q={_word()}{_word()}")
    assert f'id="customer-{customer_id}"' not in nothing.text


def test_search_pages_by_cursor(app, alpha, agent) -> None:
    client = sign_in(app, "alpha", agent.email)
    surname = _word()
    # One more than a page, all found by the same surname.
    ids = {_create(client, _person(last_name=surname)) for _ in range(PAGE_SIZE + 1)}

    first = client.get(f"/customers?q={surname}")
    assert 'rel="next"' in first.text
    shown_first = {i for i in ids if f'id="customer-{i}"' in first.text}
    assert len(shown_first) == PAGE_SIZE
    next_link = first.text.split('rel="next" hx-get="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = client.get(next_link)
    shown_second = {i for i in ids if f'id="customer-{i}"' in second.text}
    assert shown_second == ids - shown_first and len(shown_second) == 1
    assert 'rel="next"' not in second.text

    assert client.get("/customers?cursor=not-a-cursor").status_code == 422


def test_agent_sees_masked_values_a_manager_sees_them_plain(app, alpha, agent, manager) -> None:
    agent_client = sign_in(app, "alpha", agent.email)
    form = _person(email="masked.person@example.com", phone="+44 20 7946 0123")
    customer_id = _create(agent_client, form)

    for path in (f"/customers/{customer_id}", f"/customers?q={form['last_name']}"):
        masked = agent_client.get(path).text
        assert "m***@example.com" in masked and "***123" in masked
        assert "masked.person@example.com" not in masked and "7946" not in masked
        assert form["national_id"] not in masked

    plain = sign_in(app, "alpha", manager.email).get(f"/customers/{customer_id}").text
    assert "masked.person@example.com" in plain and form["national_id"] in plain
    assert "1980-05-17" in plain
    assert ">1980<" in agent_client.get(f"/customers/{customer_id}").text


def test_invalid_form_is_422_with_field_messages_and_writes_nothing(app, alpha, agent) -> None:
    client = sign_in(app, "alpha", agent.email)
    last_name = _word()
    response = client.post(
        "/customers/new",
        data={"kind": "person", "last_name": last_name, "email": "not-an-email"},
    )
    assert response.status_code == 422
    assert 'id="first_name-errors"' in response.text and "This field is required." in response.text
    assert 'id="email-errors"' in response.text and "Must be an email address." in response.text
    assert f'value="{last_name}"' in response.text
    assert _count(app, alpha, last_name) == 0

    no_kind = client.post("/customers/new", data={"last_name": last_name})
    assert no_kind.status_code == 422 and "This field is required." in no_kind.text
    assert _count(app, alpha, last_name) == 0


def test_duplicate_warning_then_save_anyway(app, alpha, agent) -> None:
    client = sign_in(app, "alpha", agent.email)
    form = _person()
    first_id = _create(client, form)
    again = {**_person(), "email": form["email"]}

    warned = client.post("/customers/new", data=again)
    assert warned.status_code == 409
    assert 'id="duplicates"' in warned.text
    assert f'href="/customers/{first_id}"' in warned.text and "same email" in warned.text
    assert 'name="force" value="1"' in warned.text
    assert _count(app, alpha, again["last_name"]) == 0

    saved = client.post("/customers/new", data={**again, "force": "1"})
    assert saved.status_code == 303
    assert _count(app, alpha, again["last_name"]) == 1


def test_out_of_reach_customers_are_404(app, alpha, beta, agent, other_agent) -> None:
    mine = _create(sign_in(app, "alpha", agent.email), _person())
    theirs = _create(sign_in(app, "alpha", other_agent.email), _person())
    client = sign_in(app, "alpha", agent.email)
    assert client.get(f"/customers/{mine}").status_code == 200
    assert client.get(f"/customers/{theirs}").status_code == 404

    beta_manager = make_staff(app, beta, "manager")
    beta_client = sign_in(app, "beta", beta_manager.email)
    assert beta_client.get(f"/customers/{mine}").status_code == 404


def test_timeline_shows_the_create_entry(app, alpha, agent) -> None:
    client = sign_in(app, "alpha", agent.email)
    customer_id = _create(client, _person())
    page = client.get(f"/customers/{customer_id}").text
    timeline = page.split('id="timeline"', 1)[1]
    assert "customers.create" in timeline and agent.email in timeline
    assert "arrive with their modules" in page
