"""Assigning customers: single and bulk, one audit entry per customer, reach."""

from __future__ import annotations

from flask import Flask

from tests.agents.conftest import World, audit_entries, customer_agents, last_audit_id

ADMIN = "admin@alpha.example.com"


def test_a_manager_reassigns_one_customer_within_their_team(app: Flask, alpha, world: World, api):
    mark = last_audit_id(app, alpha)
    customer = world.customers_a1[0]
    response = api(world.manager_a.email).post(
        "/api/v1/customers/assign", json={"customer_ids": [customer], "agent_id": world.a2}
    )
    assert (response.status_code, response.json) == (200, {"changed": 1})
    assert customer_agents(app, alpha, world.customers_a1) == {
        customer: world.a2,
        world.customers_a1[1]: world.a1,
        world.customers_a1[2]: world.a1,
    }
    (entry,) = audit_entries(app, alpha, "customers.reassign", mark)
    assert (entry.entity, entry.entity_id) == ("customers", str(customer))
    assert entry.changes == {"agent_id": {"before": world.a1, "after": world.a2}}
    assert entry.actor == f"user:{world.manager_a.id}"


def test_bulk_reassignment_is_one_update_audited_per_customer(app: Flask, alpha, world: World, api):
    mark = last_audit_id(app, alpha)
    ids = [*world.customers_a1, world.customers_b1[0]]
    response = api(ADMIN).post(
        "/api/v1/customers/assign", json={"customer_ids": ids, "agent_id": world.b1}
    )
    # b1 already had the last one: only three changed.
    assert (response.status_code, response.json) == (200, {"changed": 3})
    assert set(customer_agents(app, alpha, tuple(ids)).values()) == {world.b1}
    entries = audit_entries(app, alpha, "customers.reassign", mark)
    assert sorted(int(e.entity_id) for e in entries) == sorted(world.customers_a1)
    assert {e.changes["agent_id"]["before"] for e in entries} == {world.a1}

    unassigned = api(ADMIN).post(
        "/api/v1/customers/assign", json={"customer_ids": [ids[0]], "agent_id": None}
    )
    assert unassigned.json == {"changed": 1}
    assert customer_agents(app, alpha, (ids[0],)) == {ids[0]: None}


def test_customers_outside_a_managers_subtree_answer_404_and_nothing_moves(
    app: Flask, alpha, world: World, api
):
    mark = last_audit_id(app, alpha)
    manager_a = api(world.manager_a.email)
    mixed = [world.customers_a1[0], world.customers_b1[0]]
    response = manager_a.post(
        "/api/v1/customers/assign", json={"customer_ids": mixed, "agent_id": world.a2}
    )
    assert response.status_code == 404
    unknown = manager_a.post(
        "/api/v1/customers/assign", json={"customer_ids": [2_000_000_000], "agent_id": world.a2}
    )
    assert unknown.status_code == 404
    # Nor to an agent of another team.
    elsewhere = manager_a.post(
        "/api/v1/customers/assign",
        json={"customer_ids": [world.customers_a1[0]], "agent_id": world.b1},
    )
    assert (elsewhere.status_code, elsewhere.json["errors"]) == (
        422,
        {"agent_id": ["No such active agent."]},
    )
    assert customer_agents(app, alpha, world.customers_a1 + world.customers_b1) == {
        **dict.fromkeys(world.customers_a1, world.a1),
        **dict.fromkeys(world.customers_b1, world.b1),
    }
    assert audit_entries(app, alpha, "customers.reassign", mark) == []


def test_customers_of_another_brokerage_answer_404(app: Flask, alpha, beta, world: World, api):
    stranger = api("admin@beta.example.com", "beta")
    response = stranger.post(
        "/api/v1/customers/assign", json={"customer_ids": [world.customers_a1[0]], "agent_id": None}
    )
    assert response.status_code == 404
    assert customer_agents(app, alpha, (world.customers_a1[0],)) == {
        world.customers_a1[0]: world.a1
    }


def test_malformed_assignments_are_422_naming_each_field(world: World, api):
    admin = api(ADMIN)
    missing = admin.post("/api/v1/customers/assign", json={"customer_ids": [1]})
    assert missing.json["errors"] == {"agent_id": ["This field is required."]}
    bad = admin.post(
        "/api/v1/customers/assign", json={"customer_ids": "1,2", "agent_id": "x", "extra": 1}
    )
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"extra"}
    bad = admin.post("/api/v1/customers/assign", json={"customer_ids": [], "agent_id": -1})
    assert set(bad.json["errors"]) == {"customer_ids", "agent_id"}
    bad = admin.post(
        "/api/v1/customers/assign", json={"customer_ids": ["a", True], "agent_id": None}
    )
    assert bad.json["errors"] == {"customer_ids": ["Customer ids are positive whole numbers."]}
