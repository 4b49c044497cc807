"""Likely duplicates on create (409, ?force=true), merge and unmerge from the audit trail."""

from __future__ import annotations

from flask import Flask

from tests.customers.conftest import Caller, created, person, word
from tests.security.conftest import audit_entries, last_audit_id


def create(caller: Caller, body: dict, force: bool = False):  # type: ignore[no-untyped-def]
    return caller.call("POST", "/customers" + ("?force=true" if force else ""), json=body)


def duplicates(response) -> dict[int, list[str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 409, response.json
    assert response.mimetype == "application/problem+json"
    return {d["id"]: d["reasons"] for d in response.json["duplicates"]}


def test_likely_duplicates_answer_409_unless_forced(manager: Caller) -> None:
    original = person(first_name="Johnathan", last_name=word(), date_of_birth="1975-03-14")
    first = created(manager, original)
    twin = {
        **person(),
        "first_name": "Jonathan",  # a near-twin name...
        "last_name": original["last_name"],
        "date_of_birth": "1975-03-14",  # ...born the same day
    }
    assert duplicates(create(manager, twin)) == {first["id"]: ["name_and_date_of_birth"]}
    # Same name, another birthday: someone else.
    assert create(manager, {**twin, "date_of_birth": "1980-01-01"}).status_code == 201

    same_email = {**person(), "email": original["email"].upper()}
    assert duplicates(create(manager, same_email)) == {first["id"]: ["email"]}
    same_phone = {**person(), "phone": original["phone"].replace(" ", "")}
    assert duplicates(create(manager, same_phone)) == {first["id"]: ["phone"]}
    same_id = {**person(), "national_id": original["national_id"].replace("-", " ")}
    assert duplicates(create(manager, same_id)) == {first["id"]: ["national_id"]}

    forced = create(manager, same_id, force=True)
    assert forced.status_code == 201
    assert forced.json["national_id"] == same_id["national_id"]


def test_duplicates_outside_the_callers_book_are_not_revealed(
    manager: Caller, agent: Caller, other_agent: Caller
) -> None:
    theirs = created(manager, person(agent_id=other_agent.agent_id))
    response = create(agent, {**person(), "email": theirs["email"]})
    assert response.status_code == 201


def test_merge_moves_every_record_and_unmerge_reverses_it(
    app: Flask,
    alpha,
    manager: Caller,  # type: ignore[no-untyped-def]
) -> None:
    keep = created(manager, person())
    drop = created(
        manager,
        person(contacts=[{"label": "home", "phone": "+4411122233"}, {"email": "x@example.net"}]),
    )
    mark = last_audit_id(app, alpha)
    response = manager.call("POST", f"/customers/{keep['id']}/merge", json={"drop_id": drop["id"]})
    assert response.status_code == 200, response.json
    entry_id = response.json["audit_entry_id"]
    merged = manager.call("GET", f"/customers/{keep['id']}").json
    assert sorted(c["id"] for c in merged["contacts"]) == sorted(c["id"] for c in drop["contacts"])
    assert manager.call("GET", f"/customers/{drop['id']}").status_code == 404

    (entry,) = audit_entries(app, alpha, "customers.merge", mark)
    assert entry.id == entry_id and entry.entity_id == str(drop["id"])
    assert entry.details["keep_id"] == keep["id"]
    moved = entry.details["moved"]["customer_contacts.customer_id"]
    assert sorted(key[0] for key in moved) == sorted(c["id"] for c in drop["contacts"])
    assert entry.changes["status"] == {"before": "active", "after": "merged"}
    assert entry.changes["merged_into"] == {"before": None, "after": keep["id"]}
    for secret in (drop["email"], drop["first_name"], "x@example.net", "4411122233"):
        assert secret not in str(entry.changes) + str(entry.details)

    undo = manager.call("POST", "/customers/unmerge", json={"audit_entry_id": entry_id})
    assert undo.status_code == 200, undo.json
    restored = manager.call("GET", f"/customers/{drop['id']}").json
    assert restored == {**drop, "updated_at": restored["updated_at"]}
    assert manager.call("GET", f"/customers/{keep['id']}").json["contacts"] == []
    (unmerged,) = audit_entries(app, alpha, "customers.unmerge", mark)
    assert unmerged.details["merge_entry"] == entry_id
    again = manager.call("POST", "/customers/unmerge", json={"audit_entry_id": entry_id})
    assert again.status_code == 409
    assert (
        manager.call("POST", "/customers/unmerge", json={"audit_entry_id": unmerged.id}).status_code
        == 404
    )


def test_merge_refusals(manager: Caller, agent: Caller, other_agent: Caller) -> None:
    one = created(manager, person())
    itself = manager.call("POST", f"/customers/{one['id']}/merge", json={"drop_id": one["id"]})
    assert (itself.status_code, list(itself.json["errors"])) == (422, ["drop_id"])
    missing = manager.call("POST", f"/customers/{one['id']}/merge", json={"drop_id": 2_000_000_000})
    assert missing.status_code == 404
    assert (
        agent.call("POST", f"/customers/{one['id']}/merge", json={"drop_id": 1}).status_code == 403
    )
