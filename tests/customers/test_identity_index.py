"""The identity index (name and date of birth, keyed hash): kept on every write path
(erasure clears it: test_personal_data's canary test), used by the duplicate warning
and the import's duplicate check, and filled for rows that have none (written before
it existed) by the backfill. And clean_email's cached domains."""

from __future__ import annotations

import io

import pytest
from email_validator import EmailNotValidError, validate_email
from flask import Flask
from sqlalchemy import func, insert, select, update

from core import jobs
from core.customers import operations
from core.customers.models import Customer, identity_value
from core.customers.rules import clean_email
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.conftest import HostClient
from tests.core.jobs_support import drain
from tests.customers.conftest import Caller, created, person, word
from tests.security.conftest import sign_in
from tests.security.test_tokens import make_user


def stored(app: Flask, tenant: Tenant, customer_id: int) -> tuple[str | None, str | None]:
    """(identity_index as stored, identity_value of the stored name and birth date)."""
    with app.app_context(), tenant_context(tenant):
        row = db.session.get(Customer, customer_id)
        expected = identity_value(row.first_name, row.last_name, row.date_of_birth)
        return row.identity_index, expected


def unindex(app: Flask, tenant: Tenant, customer_id: int) -> None:
    """As a row written before migration 0012 is: no identity index."""
    with app.app_context(), tenant_context(tenant):
        db.session.execute(
            update(Customer).where(Customer.id == customer_id).values(identity_index=None)
        )
        db.session.commit()


def test_identity_index_follows_the_name_and_birth_date(
    app: Flask, alpha: Tenant, manager: Caller
) -> None:
    body = person(date_of_birth="1961-02-03")
    customer = created(manager, body)
    index, expected = stored(app, alpha, customer["id"])
    assert index is not None and index == expected
    with app.app_context(), tenant_context(alpha):
        # Case and spacing do not make another person; another birthday does.
        spelled = identity_value(f" {body['first_name'].upper()} ", body["last_name"], "1961-02-03")
        assert spelled == index
        assert identity_value(body["first_name"], body["last_name"], "1961-02-04") != index
        assert identity_value(body["first_name"], body["last_name"], None) is None

    for change in ({"date_of_birth": "1962-02-03"}, {"first_name": word()}, {"last_name": word()}):
        assert manager.call("PATCH", f"/customers/{customer['id']}", json=change).status_code == 200
        now, expected = stored(app, alpha, customer["id"])
        assert now == expected and now != index
        index = now
    patched = manager.call("PATCH", f"/customers/{customer['id']}", json={"date_of_birth": None})
    assert patched.status_code == 200
    assert stored(app, alpha, customer["id"]) == (None, None)

    company = created(manager, {"kind": "company", "company_name": f"{word()} Ltd"})
    assert stored(app, alpha, company["id"]) == (None, None)


def test_merge_and_unmerge_keep_the_identity_index(
    app: Flask, alpha: Tenant, manager: Caller
) -> None:
    keep, drop = created(manager, person()), created(manager, person())
    before = stored(app, alpha, drop["id"])
    merged = manager.call("POST", f"/customers/{keep['id']}/merge", json={"drop_id": drop["id"]})
    assert merged.status_code == 200
    assert stored(app, alpha, drop["id"]) == before
    entry = merged.json["audit_entry_id"]
    undo = manager.call("POST", "/customers/unmerge", json={"audit_entry_id": entry})
    assert undo.status_code == 200, undo.json
    assert stored(app, alpha, drop["id"]) == before


def test_the_twin_is_found_among_many_of_the_same_name(
    app: Flask, alpha: Tenant, manager: Caller
) -> None:
    # More customers of exactly this name than the similar-name look-up returns (it
    # ranks by similarity, and all of these are equally similar): the one born the
    # same day is found by the identity index wherever it is.
    first, last = word(), word()
    with app.app_context(), tenant_context(alpha):
        for day in range(1, 71):
            db.session.add(
                Customer(
                    kind="person",
                    first_name=first,
                    last_name=last,
                    date_of_birth=f"1950-{1 + day // 28:02d}-{1 + day % 28:02d}",
                    created_by="test",
                    updated_by="test",
                )
            )
        twin = Customer(
            kind="person",
            first_name=first,
            last_name=last,
            date_of_birth="1990-12-31",
            created_by="test",
            updated_by="test",
        )
        db.session.add(twin)
        db.session.commit()
        twin_id = twin.id
    response = manager.call(
        "POST",
        "/customers",
        json=person(first_name=first, last_name=last, date_of_birth="1990-12-31"),
    )
    assert response.status_code == 409, response.json
    reasons = {d["id"]: d["reasons"] for d in response.json["duplicates"]}
    assert reasons[twin_id] == ["name_and_date_of_birth"]


def test_rows_without_an_identity_index_are_still_duplicates(
    app: Flask, alpha: Tenant, manager: Caller
) -> None:
    body = person(date_of_birth="1944-04-04")
    customer = created(manager, body)
    unindex(app, alpha, customer["id"])
    twin = person(
        first_name=body["first_name"].lower(),
        last_name=body["last_name"],
        date_of_birth="1944-04-04",
    )
    response = manager.call("POST", "/customers", json=twin)
    assert response.status_code == 409, response.json
    assert {d["id"]: d["reasons"] for d in response.json["duplicates"]} == {
        customer["id"]: ["name_and_date_of_birth"]
    }


@pytest.fixture(scope="module")
def manager_client(app: Flask, alpha: Tenant) -> HostClient:
    return sign_in(app, alpha.slug, make_user(app, alpha, ("manager",)).email)


def test_import_skips_a_twin_without_an_identity_index(
    app: Flask, alpha: Tenant, manager: Caller, manager_client: HostClient
) -> None:
    body = person(date_of_birth="1955-05-05")
    customer = created(manager, body)
    unindex(app, alpha, customer["id"])
    text = (
        "first_name,last_name,date_of_birth,email\n"
        f"{body['first_name'].upper()},{body['last_name']},1955-05-05,new.{word()}@example.com\n"
        f"{body['first_name']},{body['last_name']},1955-05-06,new.{word()}@example.com\n"
    )
    upload = manager_client.post(
        "/customers/import", data={"file": (io.BytesIO(text.encode()), "twins.csv")}
    )
    assert upload.status_code == 303, upload.text
    form = {
        f"map-{i}": f for i, f in enumerate(["first_name", "last_name", "date_of_birth", "email"])
    }
    started = manager_client.post(upload.headers["Location"], data=form)
    assert started.status_code == 303, started.text
    drain(app, "bulk")
    with app.app_context(), tenant_context(alpha):
        result = jobs.get_job(started.headers["Location"].rsplit("/", 1)[1]).result
        assert (result["created"], result["skipped"]) == (1, 1)
        new = db.session.scalars(
            select(Customer).where(
                func.lower(Customer.last_name) == body["last_name"].lower(),
                Customer.id != customer["id"],
            )
        ).one()
        # The bulk path writes the index too.
        assert new.identity_index == identity_value(new.first_name, new.last_name, "1955-05-06")


def test_the_backfill_fills_rows_without_one(app: Flask, alpha: Tenant, manager: Caller) -> None:
    people = [created(manager, person()) for _ in range(3)]
    for customer in people:
        unindex(app, alpha, customer["id"])
    with app.app_context(), tenant_context(alpha):
        # A bulk write's row with no last name: no identity to give it, and no reason
        # to read it again and again.
        db.session.execute(
            insert(Customer).values(
                kind="person",
                first_name=word(),
                date_of_birth="1950-01-01",
                created_by="test",
                updated_by="test",
            )
        )
        db.session.commit()
        assert operations.identity_backfill(batch=2) >= 3
        assert operations.identity_backfill() == 0  # nothing left
    for customer in people:
        index, expected = stored(app, alpha, customer["id"])
        assert index is not None and index == expected
    assert jobs.PERIODIC[operations.BACKFILL_JOB].every == 24 * 3600


ADDRESSES = [
    "jane.doe@example.com",
    "Jane.Doe+tag@Sub.Example.CO.UK",
    "o'brien@example.ie",
    "a@b.co",
    "x@xn--bcher-kva.ch",
    "info@localhost",
    "a@example",
    "a@-example.com",
    "a@example-.com",
    "a@exa_mple.com",
    "a@example..com",
    "a@.example.com",
    "a@example.com.",
    "a@123.com",
    "a@example.invalid",
    "a@example.test",
    "a@xn--ab.com",
    "a@ab--cd.com",
    ".a@example.com",
    "a.@example.com",
    "a..b@example.com",
    "a b@example.com",
    '"quoted"@example.com',
    "Jane <jane@example.com>",
    "jane@example.com@example.com",
    "@example.com",
    "jane@",
    "ünï@example.com",
    "jane@bücher.de",
    "a" * 64 + "@example.com",
    "a" * 240 + "@example.com",
    "a" * 242 + "@example.com",
    "a" * 243 + "@example.com",  # 255 characters: one too many for an address
    "a@" + ".".join(["abcdefghij"] * 22) + ".com",
    "a@" + "b" * 64 + ".com",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_clean_email_is_what_email_validator_says(address: str) -> None:
    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match=r"^Must be an email address\.$"):
            clean_email(address)
    else:
        assert clean_email(address) == expected.lower()
