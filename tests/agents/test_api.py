"""Agents API: CRUD, 422s with nothing written, hierarchy reach, other tenants, RBAC."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Flask
from sqlalchemy import func, select

from core.agents.models import Agent
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests.agents.conftest import (
    World,
    agent_of,
    audit_entries,
    build_world,
    create_user,
    last_audit_id,
)

ADMIN = "admin@alpha.example.com"


def _count_agents(app: Flask, tenant: Tenant) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(select(func.count(Agent.id)))


def test_create_read_list_and_patch_an_agent(app: Flask, alpha: Tenant, world: World, api):
    admin = api(ADMIN)
    mark = last_audit_id(app, alpha)
    body = {
        "user_id": world.spare.id,
        "team_id": world.team_a,
        "licence_number": "  LIC-9 ",
        "licence_expires_on": "2031-05-31",
        "territories": ["Leeds", "York", "Leeds"],
    }
    created = admin.post("/api/v1/agents", json=body)
    assert created.status_code == 201, created.text
    agent = created.json
    assert agent["email"] == world.spare.email
    assert agent["licence_number"] == "LIC-9"
    assert agent["territories"] == ["Leeds", "York"]
    assert (agent["licence_status"], agent["can_bind"]) == ("valid", True)

    assert admin.get(f"/api/v1/agents/{agent['id']}").json == agent
    listed = admin.get(f"/api/v1/agents?team_id={world.team_a}").json["items"]
    assert [a["id"] for a in listed] == sorted([world.a1, world.a2, agent["id"]])

    patched = admin.patch(
        f"/api/v1/agents/{agent['id']}",
        json={"licence_expires_on": "2032-01-01", "is_active": False},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json["licence_expires_on"], patched.json["is_active"]) == ("2032-01-01", False)
    assert patched.json["can_bind"] is False

    (created_entry,) = audit_entries(app, alpha, "agents.create", mark)
    assert created_entry.entity_id == str(agent["id"])
    (updated,) = audit_entries(app, alpha, "agents.update", mark)
    assert updated.changes["licence_expires_on"] == {"before": "2031-05-31", "after": "2032-01-01"}
    assert updated.changes["is_active"] == {"before": True, "after": False}


def test_keyset_pages_cover_every_agent_once(app: Flask, world: World, api):
    admin = api(ADMIN)
    seen, cursor = [], None
    while True:
        page = admin.get("/api/v1/agents?limit=2" + (f"&cursor={cursor}" if cursor else "")).json
        assert len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen))
    assert {world.a1, world.a2, world.b1} <= set(seen)


def test_bad_input_is_422_naming_each_field_and_nothing_is_written(
    app: Flask, alpha: Tenant, world: World, api
):
    admin = api(ADMIN)
    before, mark = _count_agents(app, alpha), last_audit_id(app, alpha)
    response = admin.post(
        "/api/v1/agents",
        json={
            "user_id": 2_000_000_000,
            "team_id": world.agency,  # an agency is not a team
            "licence_number": "",
            "licence_expires_on": "2030-02-30",
            "territories": ["ok", 7],
            "colour": "blue",
        },
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.json["errors"]) == {
        "user_id",
        "team_id",
        "licence_number",
        "licence_expires_on",
        "territories",
        "colour",
    }
    taken = admin.post(
        "/api/v1/agents",
        json={
            "user_id": world.a1_user.id,
            "licence_number": "X",
            "licence_expires_on": "2030-01-01",
        },
    )
    assert taken.status_code == 422
    assert taken.json["errors"] == {"user_id": ["This user already has an agent profile."]}
    assert admin.post("/api/v1/agents", data="not json").status_code == 422

    patched = admin.patch(
        f"/api/v1/agents/{world.a1}",
        json={"licence_number": "NEW", "licence_expires_on": "yesterday", "is_active": "no"},
    )
    assert patched.status_code == 422
    assert set(patched.json["errors"]) == {"licence_expires_on", "is_active"}
    assert agent_of(app, alpha, world.a1).licence_number == f"L-{world.tag}-0"
    assert _count_agents(app, alpha) == before
    assert audit_entries(app, alpha, "agents.create", mark) == []
    assert audit_entries(app, alpha, "agents.update", mark) == []


def test_a_manager_sees_only_the_agents_below_the_units_they_manage(world: World, api):
    team_a, team_b, boss = (
        api(world.manager_a.email),
        api(world.manager_b.email),
        api(world.boss.email),
    )

    def ids(client) -> set[int]:
        return {a["id"] for a in client.get("/api/v1/agents?limit=200").json["items"]}

    assert ids(team_a) == {world.a1, world.a2}
    assert ids(team_b) == {world.b1}
    assert ids(boss) == {world.a1, world.a2, world.b1}
    assert {world.a1, world.a2, world.b1} <= ids(api(ADMIN))

    assert team_a.get(f"/api/v1/agents/{world.b1}").status_code == 404
    refused = team_a.patch(f"/api/v1/agents/{world.b1}", json={"licence_number": "MINE"})
    assert refused.status_code == 404
    assert team_b.get(f"/api/v1/agents/{world.b1}").status_code == 200
    # A manager places agents only in their own teams.
    moved = team_a.patch(f"/api/v1/agents/{world.a1}", json={"team_id": world.team_b})
    assert (moved.status_code, moved.json["errors"]) == (422, {"team_id": ["No such team."]})


def test_another_brokerage_cannot_see_or_change_an_agent(app: Flask, alpha, beta, world, api):
    stranger = api("admin@beta.example.com", "beta")
    assert stranger.get(f"/api/v1/agents/{world.a1}").status_code == 404
    assert (
        stranger.patch(f"/api/v1/agents/{world.a1}", json={"licence_number": "Z"}).status_code
        == 404
    )
    assert world.a1 not in {a["id"] for a in stranger.get("/api/v1/agents").json["items"]}
    assert agent_of(app, alpha, world.a1).licence_number == f"L-{world.tag}-0"


def test_agents_and_customers_may_not_read_or_manage_agents(app: Flask, alpha, world: World, api):
    customer = f"customer.{world.tag}@alpha.example.com"
    create_user(app, alpha, customer, ["customer"])
    for email in (world.a1_user.email, customer):
        client = api(email)
        assert client.get("/api/v1/agents").status_code == 403
        assert client.get(f"/api/v1/agents/{world.a1}").status_code == 403
        assert client.patch(f"/api/v1/agents/{world.a1}", json={}).status_code == 403
        denied = client.post(
            "/api/v1/customers/assign",
            json={"customer_ids": [world.customers_a1[0]], "agent_id": world.a2},
        )
        assert denied.status_code == 403


def test_expired_licences_show_in_the_api(app: Flask, alpha: Tenant, api):
    today = date.today()
    world = build_world(app, alpha, (today - timedelta(days=1), today + timedelta(days=5), today))
    admin = api(ADMIN)
    a1 = admin.get(f"/api/v1/agents/{world.a1}").json
    a2 = admin.get(f"/api/v1/agents/{world.a2}").json
    b1 = admin.get(f"/api/v1/agents/{world.b1}").json
    assert (a1["licence_status"], a1["can_bind"]) == ("expired", False)
    assert (a2["licence_status"], a2["can_bind"]) == ("expiring", True)
    assert (b1["licence_status"], b1["can_bind"]) == ("expiring", True)
