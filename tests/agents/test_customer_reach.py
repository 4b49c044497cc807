"""Which customers a manager reaches: those of the agents below the units they manage
(and unassigned ones), over the API and on the screens; the rest answers 404. Admins
reach every customer; the tenant setting `agent_book_scope` widens agents' books."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from core import settings
from core.db import db
from core.security import scope
from core.tenancy import Tenant, tenant_context
from tests.agents.conftest import World, customer_agents
from tests.security.conftest import sign_in

ADMIN = "admin@alpha.example.com"


def _listed(client, tag: str) -> set[int]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/customers", query_string={"q": tag, "limit": 200})
    assert response.status_code == 200, response.json
    return {item["id"] for item in response.json["items"]}


def test_a_team_manager_gets_404_for_another_teams_customer(
    app: Flask, alpha: Tenant, world: World, api
) -> None:
    manager_a = api(world.manager_a.email)
    mine, theirs = world.customers_a1[0], world.customers_b1[0]
    assert manager_a.get(f"/api/v1/customers/{mine}").status_code == 200
    assert manager_a.get(f"/api/v1/customers/{theirs}").status_code == 404
    patch = manager_a.patch(f"/api/v1/customers/{theirs}", json={"notes": "mine now"})
    assert patch.status_code == 404
    assert manager_a.get(f"/api/v1/customers/{theirs}/verifications").status_code == 404
    assert _listed(manager_a, world.tag) == set(world.customers_a1)
    by_agent = manager_a.get("/api/v1/customers", query_string={"agent_id": world.b1})
    assert by_agent.json["items"] == []

    screens = sign_in(app, alpha.slug, world.manager_a.email)
    assert screens.get(f"/customers/{mine}").status_code == 200
    assert screens.get(f"/customers/{theirs}").status_code == 404
    results = screens.get("/customers", query_string={"q": world.tag}).text
    assert f'id="customer-{mine}"' in results and f'id="customer-{theirs}"' not in results

    # And the other way round.
    manager_b = api(world.manager_b.email)
    assert manager_b.get(f"/api/v1/customers/{mine}").status_code == 404
    assert _listed(manager_b, world.tag) == set(world.customers_b1)
    # An agent, by default, sees their own book only.
    assert _listed(api(world.a1_user.email), world.tag) == set(world.customers_a1)


def test_the_agencys_manager_and_the_admin_reach_both_teams(
    app: Flask, alpha: Tenant, world: World, api
) -> None:
    everyone = set(world.customers_a1 + world.customers_b1)
    assert _listed(api(world.boss.email), world.tag) == everyone
    assert _listed(api(ADMIN), world.tag) == everyone
    screens = sign_in(app, alpha.slug, world.boss.email)
    assert screens.get(f"/customers/{world.customers_b1[0]}").status_code == 200


def test_a_manager_assigns_within_their_subtree_and_sees_unassigned_customers(
    app: Flask, alpha: Tenant, world: World, api
) -> None:
    manager_a = api(world.manager_a.email)
    person = {"kind": "person", "first_name": "Una", "last_name": f"Signed {world.tag}"}
    elsewhere = manager_a.post(
        "/api/v1/customers?force=true", json={**person, "agent_id": world.b1}
    )
    assert (elsewhere.status_code, list(elsewhere.json["errors"])) == (422, ["agent_id"])
    in_team = manager_a.post("/api/v1/customers?force=true", json={**person, "agent_id": world.a2})
    assert (in_team.status_code, in_team.json["agent_id"]) == (201, world.a2)
    # Left unassigned: in the pool every manager sees, so someone can assign it.
    pool = manager_a.post("/api/v1/customers?force=true", json=person)
    assert (pool.status_code, pool.json["agent_id"]) == (201, None)
    assert api(world.manager_b.email).get(f"/api/v1/customers/{pool.json['id']}").status_code == 200
    # An agent does not see the pool.
    agent = api(world.a1_user.email)
    assert agent.get(f"/api/v1/customers/{pool.json['id']}").status_code == 404
    assert customer_agents(app, alpha, (in_team.json["id"],)) == {in_team.json["id"]: world.a2}


@pytest.fixture
def whole_brokerage(app: Flask, alpha: Tenant) -> Iterator[None]:
    """Alpha's agents see the whole book for the test (and only the test)."""

    def put(value: str) -> None:
        with app.app_context(), tenant_context(alpha):
            settings.set(scope.BOOK_SCOPE_SETTING, value)
            db.session.commit()

    put("all")
    try:
        yield
    finally:
        put("own")


def test_with_the_setting_an_agent_and_a_manager_see_every_customer(
    app: Flask, alpha: Tenant, world: World, api, whole_brokerage: None
) -> None:
    everyone = set(world.customers_a1 + world.customers_b1)
    assert _listed(api(world.a1_user.email), world.tag) == everyone
    assert _listed(api(world.manager_a.email), world.tag) == everyone
    screens = sign_in(app, alpha.slug, world.a1_user.email)
    assert screens.get(f"/customers/{world.customers_b1[0]}").status_code == 200
