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


def _pages(caller: Caller, q: str, limit: int) -> tuple[list[list[int]], int]:
    """Every page of `q` (ids), and how many requests it took."""
    pages, cursor, requests = [], None, 0
    while True:
        args = {"q": q, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = caller.call("GET", "/customers", query_string=args)
        assert response.status_code == 200, response.json
        requests += 1
        pages.append([item["id"] for item in response.json["items"]])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages, requests
        assert requests < 20


def test_names_that_begin_with_the_query_first_then_surnames_words_only_without_them(
    manager: Caller, agent: Caller, other_agent: Caller
) -> None:
    surname, other = word(9), word(9)
    prefix = surname[:5].lower()
    mine = {"agent_id": agent.agent_id}
    begins = created(manager, person(first_name=f"{surname[:5]}ella", last_name=word(), **mine))
    zed = created(manager, person(first_name="Zed", last_name=surname, **mine))
    aaron = created(manager, person(first_name="Aaron", last_name=surname, **mine))
    theirs = created(
        manager, person(first_name="Carl", last_name=surname, agent_id=other_agent.agent_id)
    )
    # The query as a word inside a name and in an email, with no name beginning with it.
    company = {"kind": "company", "company_name": f"Harbour {other} Ltd", **mine}
    in_a_company = created(manager, company)
    email = f"{other.lower()}.bob@example.com"
    by_email = created(manager, person(first_name="Bob", last_name=word(), email=email, **mine))
    also_surname = created(manager, person(first_name="Al", last_name=f"Smith-{surname}", **mine))

    # Names that begin with it, then surnames, each in its order; a cursor goes on
    # within a part and from one to the next.
    pages, _ = _pages(manager, prefix, 200)
    assert pages == [[begins["id"], aaron["id"], theirs["id"], zed["id"]]]
    ones, requests = _pages(manager, prefix, 1)
    assert ones == [[i] for i in pages[0]] and requests == 4
    # An agent: their own book, in the same order.
    assert _pages(agent, prefix, 200)[0] == [[begins["id"], aaron["id"], zed["id"]]]
    # Surname first, as people are filed; one or two letters: names and surnames.
    assert found(agent, f"{surname} aar") == [aaron["id"]]
    short = found(manager, surname[:2])
    assert aaron["id"] in short and begins["id"] in short

    # No name begins with it: a word anywhere (a company's second word, an email's,
    # the second half of a surname), by name.
    assert found(manager, other[:5]) == [by_email["id"], in_a_company["id"]]
    assert found(agent, other[:5]) == [by_email["id"], in_a_company["id"]]
    assert found(manager, f"smith-{surname}") == [also_surname["id"]]
    assert found(manager, f"al {surname}") == [also_surname["id"]]


def test_cursors_from_elsewhere_are_refused(manager: Caller) -> None:
    tag = word().lower()
    [created(manager, person(tags=[tag])) for _ in range(2)]
    whole = manager.call("GET", "/customers", query_string={"tag": tag, "limit": 1}).json
    assert whole["next_cursor"]
    # A cursor of the whole book is not a cursor of a query, nor the other way round.
    response = manager.call(
        "GET", "/customers", query_string={"q": "x", "cursor": whole["next_cursor"]}
    )
    assert (response.status_code, list(response.json["errors"])) == (422, ["cursor"])
    name = word()
    [created(manager, person(first_name=name)) for _ in range(2)]
    searched = manager.call("GET", "/customers", query_string={"q": name, "limit": 1}).json
    assert searched["next_cursor"]
    response = manager.call("GET", "/customers", query_string={"cursor": searched["next_cursor"]})
    assert (response.status_code, list(response.json["errors"])) == (422, ["cursor"])
