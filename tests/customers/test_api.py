"""The customers API: create, read, update, delete; validation; reach; masking."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.customers.models import Customer
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.customers.conftest import Caller, created, person, word
from tests.security.conftest import audit_entries, last_audit_id


def count_customers(app: Flask, tenant: Tenant) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(func.count()).select_from(Customer))


def test_create_read_update_delete(app: Flask, alpha: Tenant, manager: Caller) -> None:
    mark = last_audit_id(app, alpha)
    body = person(
        address={"line1": "1 High Street", "city": "Leeds", "country": "GB"},
        tags=["vip", "motor"],
        marketing_consent=True,
        contacts=[{"label": "work", "email": "Work@Example.com"}],
    )
    response = manager.call("POST", "/customers", json=body)
    assert response.status_code == 201, response.json
    customer = response.json
    assert response.headers["Location"].endswith(f"/api/v1/customers/{customer['id']}")
    # A manager holds customers:export: everything in clear.
    for name in ("first_name", "last_name", "date_of_birth", "email", "national_id"):
        assert customer[name] == body[name]
    assert customer["phone"] == "+4420" + body["phone"][7:].replace(" ", "")
    assert customer["name"] == f"{body['first_name']} {body['last_name']}"
    assert customer["consent_at"] is not None
    assert customer["contacts"][0]["email"] == "work@example.com"
    assert customer["status"] == "active"

    path = f"/customers/{customer['id']}"
    assert manager.call("GET", path).json == customer

    changed = manager.call("PATCH", path, json={"last_name": "Changed", "tags": ["gold"]})
    assert changed.status_code == 200, changed.json
    assert (changed.json["last_name"], changed.json["tags"]) == ("Changed", ["gold"])
    assert changed.json["first_name"] == body["first_name"]

    assert manager.call("DELETE", path).status_code == 204
    assert manager.call("GET", path).status_code == 404
    assert manager.call("PATCH", path, json={"notes": "x"}).status_code == 404
    listed = manager.call("GET", "/customers", query_string={"q": body["first_name"]}).json
    assert customer["id"] not in [item["id"] for item in listed["items"]]

    (create,) = audit_entries(app, alpha, "customers.create", mark)
    assert create.entity_id == str(customer["id"])
    # Personal data is masked in the audit trail.
    assert create.changes["first_name"] == {"after": "[masked]"}
    assert body["first_name"] not in str(create.changes)
    (update,) = audit_entries(app, alpha, "customers.update", mark)
    assert update.changes["tags"] == {"before": ["vip", "motor"], "after": ["gold"]}
    assert update.changes["last_name"] == {"before": "[masked]", "after": "[masked]"}
    (delete,) = audit_entries(app, alpha, "customers.delete", mark)
    assert delete.changes == {"is_active": {"before": True, "after": False}}


INVALID: list[tuple[dict[str, Any], dict[str, list[str]] | set[str]]] = [
    ({"kind": "alien"}, {"kind"}),
    ({"first_name": "Ann", "last_name": "Bee"}, {"kind"}),
    ({"kind": "person"}, {"first_name", "last_name"}),
    ({"kind": "person", "first_name": "Ann"}, {"last_name"}),
    ({"kind": "company"}, {"company_name"}),
    ({"kind": "company", "company_name": "Acme", "date_of_birth": "1990-01-01"}, {"date_of_birth"}),
    (person(date_of_birth="1990-02-30"), {"date_of_birth"}),
    (person(date_of_birth="tomorrow"), {"date_of_birth"}),
    (person(date_of_birth="2999-01-01"), {"date_of_birth"}),
    (person(email="not-an-email"), {"email"}),
    (person(phone="call me"), {"phone"}),
    (person(phone="12"), {"phone"}),
    (person(national_id="12"), {"national_id"}),
    (person(national_id="12#45%678"), {"national_id"}),
    (person(shoe_size=42), {"shoe_size"}),
    (person(tags="vip"), {"tags"}),
    (person(address={"planet": "Mars"}), {"address"}),
    (person(marketing_consent="yes"), {"marketing_consent"}),
    (person(agent_id=2_000_000_000), {"agent_id"}),
    (person(contacts=[{"email": "a@example.com", "phone": "+4412345678"}]), {"contacts"}),
    (person(status="merged"), {"status"}),
    # Several bad fields: each one named.
    (
        {"kind": "person", "first_name": 7, "email": "@", "date_of_birth": "1-1-1"},
        {"first_name", "last_name", "email", "date_of_birth"},
    ),
]


@pytest.mark.parametrize(("body", "fields"), INVALID)
def test_invalid_input_is_422_naming_each_field_and_writes_nothing(
    app: Flask, alpha: Tenant, manager: Caller, body: dict, fields: set[str]
) -> None:
    before, mark = count_customers(app, alpha), last_audit_id(app, alpha)
    response = manager.call("POST", "/customers", json=body)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert set(response.json["errors"]) == fields
    assert count_customers(app, alpha) == before
    assert audit_entries(app, alpha, "customers.create", mark) == []


def test_invalid_update_is_422_and_changes_nothing(manager: Caller) -> None:
    customer = created(manager, person())
    path = f"/customers/{customer['id']}"
    response = manager.call(
        "PATCH", path, json={"last_name": None, "email": "nope", "first_name": "Fine"}
    )
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"last_name", "email"}
    assert manager.call("GET", path).json == customer
    assert manager.call("POST", "/customers", data="not json").status_code == 422
    bad_cursor = manager.call("GET", "/customers", query_string={"cursor": "garbage!"})
    assert (bad_cursor.status_code, list(bad_cursor.json["errors"])) == (422, ["cursor"])


def test_another_tenants_customer_is_404(
    app: Flask, beta: Tenant, manager: Caller, beta_manager: Caller
) -> None:
    customer = created(manager, person())
    with app.app_context(), tenant_context(beta):
        assert db.session.get(Customer, customer["id"]) is None  # no namesake id in beta
    path = f"/customers/{customer['id']}"
    for method, body in (("GET", None), ("PATCH", {"notes": "x"}), ("DELETE", None)):
        assert beta_manager.call(method, path, json=body).status_code == 404
    assert beta_manager.call("GET", f"{path}/export").status_code == 404
    # A token of alpha is refused on beta's host altogether.
    foreign = Caller(beta_manager.app, "beta", manager.user_id, manager.token)
    assert foreign.call("GET", path).status_code == 401


def test_an_agent_reaches_their_own_book_only(
    manager: Caller, agent: Caller, other_agent: Caller
) -> None:
    mine = agent.call("POST", "/customers", json=person())
    assert mine.status_code == 201, mine.json
    # An agent's new customer goes to their own book.
    assert mine.json["agent_id"] == agent.agent_id
    theirs = created(manager, person(agent_id=other_agent.agent_id))

    assert agent.call("GET", f"/customers/{mine.json['id']}").status_code == 200
    assert agent.call("GET", f"/customers/{theirs['id']}").status_code == 404
    assert agent.call("PATCH", f"/customers/{theirs['id']}", json={"notes": "x"}).status_code == 404
    listed = agent.call("GET", "/customers", query_string={"agent_id": other_agent.agent_id})
    assert listed.status_code == 200 and listed.json["items"] == []
    everyone = [c["id"] for c in agent.call("GET", "/customers?limit=200").json["items"]]
    assert mine.json["id"] in everyone and theirs["id"] not in everyone

    # Handing a customer to someone else would take it out of sight: refused.
    response = agent.call(
        "PATCH", f"/customers/{mine.json['id']}", json={"agent_id": other_agent.agent_id}
    )
    assert (response.status_code, list(response.json["errors"])) == (422, ["agent_id"])
    # Their team's manager sees every book of the team.
    assert manager.call("GET", f"/customers/{mine.json['id']}").status_code == 200
    # Agents may not delete (customers:delete), nor export.
    assert agent.call("DELETE", f"/customers/{mine.json['id']}").status_code == 403
    assert agent.call("GET", f"/customers/{mine.json['id']}/export").status_code == 403


def test_what_an_agent_sees_is_masked(agent: Caller, manager: Caller) -> None:
    body = person(national_id="123-45-6789", date_of_birth="1980-05-17", phone="+44 20 7946 0958")
    body["email"] = "jane.q@example.com"
    customer = agent.call("POST", "/customers?force=true", json=body).json
    seen = agent.call("GET", f"/customers/{customer['id']}").json
    assert seen["national_id"] == "****6789"
    assert seen["date_of_birth"] == "1980"
    assert seen["email"] == "j***@example.com"
    assert seen["phone"] == "***958"
    assert seen["first_name"] == body["first_name"]  # names are not masked
    clear = manager.call("GET", f"/customers/{customer['id']}").json
    assert (clear["national_id"], clear["date_of_birth"]) == ("123-45-6789", "1980-05-17")
    assert clear["email"] == "jane.q@example.com"


def test_company(manager: Caller) -> None:
    name = f"{word()} Holdings Ltd"
    customer = created(
        manager, {"kind": "company", "company_name": name, "registration_number": "RC123"}
    )
    assert (customer["name"], customer["first_name"]) == (name, None)
