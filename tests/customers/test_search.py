"""Search over names, email, phone, national id; keyset pages; pg_trgm from `public`."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.customers.conftest import Caller, created, person, word


def found(caller: Caller, q: str, **args: object) -> list[int]:
    response = caller.call("GET", "/customers", query_string={"q": q, "limit": 200, **args})
    assert response.status_code == 200, response.json
    return [item["id"] for item in response.json["items"]]


def test_one_box_finds_by_name_email_phone_and_national_id(manager: Caller) -> None:
    body = person(national_id="AB 123 456 C", phone="+44 20 7946 1234")
    customer = created(manager, body)
    ident = customer["id"]
    first, last = body["first_name"], body["last_name"]
    assert ident in found(manager, first)
    assert ident in found(manager, f"{first[:4]}")  # as you type: a prefix
    assert ident in found(manager, f"{last} {first}")
    # A typo: trigram similarity (public.% under a search_path without public).
    typo = first[:3] + first[4:] + " " + last
    assert ident in found(manager, typo)
    assert ident in found(manager, body["email"])
    assert ident in found(manager, body["email"].upper())
    assert ident in found(manager, "+44 20 7946 1234")
    assert ident in found(manager, "442079461234")
    # The national id: exact only, however it is spelled.
    assert found(manager, "ab123456c") == [ident]
    assert found(manager, "AB-123-456-C") == [ident]
    assert ident not in found(manager, "AB 123 456")
    assert ident not in found(manager, word())


def test_company_by_registration_number(manager: Caller) -> None:
    reg = f"RC{word(6).upper()}"
    company = created(
        manager, {"kind": "company", "company_name": f"{word()} Ltd", "registration_number": reg}
    )
    assert found(manager, reg) == [company["id"]]


def test_keyset_pages_are_stable_and_complete(manager: Caller) -> None:
    tag = word().lower()
    ids = [created(manager, person(tags=[tag]))["id"] for _ in range(7)]

    def page(cursor: str | None) -> dict:
        args = {"tag": tag, "limit": 3, **({"cursor": cursor} if cursor else {})}
        response = manager.call("GET", "/customers", query_string=args)
        assert response.status_code == 200, response.json
        return response.json

    first = page(None)
    # A customer that sorts before the cursor arrives between two pages: the next
    # page neither repeats nor skips anything (keyset, not OFFSET).
    created(manager, person(first_name="Aaaa", last_name="Aaaa", tags=[tag]))
    second = page(first["next_cursor"])
    third = page(second["next_cursor"])
    assert third["next_cursor"] is None
    seen = [c["id"] for p in (first, second, third) for c in p["items"]]
    assert sorted(seen) == sorted(ids)
    names = [c["name"].lower() for p in (first, second, third) for c in p["items"]]
    assert names == sorted(names)
    assert page(first["next_cursor"]) == second


def test_filters_by_status_and_agent(manager: Caller, agent: Caller) -> None:
    tag = word().lower()
    active = created(manager, person(tags=[tag], agent_id=agent.agent_id))
    inactive = created(manager, person(tags=[tag], status="inactive"))
    assert found(manager, "", tag=tag, status="inactive") == [inactive["id"]]
    assert found(manager, "", tag=tag, agent_id=agent.agent_id) == [active["id"]]
    bad = manager.call("GET", "/customers", query_string={"status": "asleep"})
    assert (bad.status_code, list(bad.json["errors"])) == (422, ["status"])


def test_trigram_functions_live_in_public_not_on_the_tenant_search_path(
    app: Flask, alpha: Tenant
) -> None:
    with app.app_context(), tenant_context(alpha):
        path = db.session.scalar(text("SHOW search_path"))
        assert "public" not in path
        assert db.session.scalar(text("SELECT public.similarity('jane', 'jane')")) == 1
        index = db.session.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_customers_sort_name_trgm'")
        )
        assert "public.gin_trgm_ops" in index
    with app.app_context(), tenant_context(alpha), pytest.raises(ProgrammingError):
        db.session.execute(text("SELECT similarity('jane', 'jane')"))
