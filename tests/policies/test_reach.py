"""Who reaches which policies: an agent their book, an admin the brokerage, nobody
another tenant's (404 on the API and the screens alike); and keyset pages."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from core.tenancy import Tenant
from tests.conftest import host_client
from tests.policies.conftest import (
    LINE,
    MOTOR,
    Staff,
    bound,
    issued,
    new_customer,
    plain_year_start,
    quote,
)
from tests.products.conftest import REFERENCE_MOTOR


def test_an_agent_reaches_only_their_books_policies(
    app: Flask, cover: Tenant, agent: Staff, other_agent: Staff, admin: Staff, products: dict
) -> None:
    policy = issued(agent, new_customer(agent)["id"])
    path = f"/policies/{policy['id']}"

    assert other_agent.call("GET", path).status_code == 404
    assert other_agent.call("POST", f"{path}/issue").status_code == 404
    assert (
        other_agent.call(
            "POST", f"{path}/cancel", json={"effective_on": policy["start_date"], "reason": "x"}
        ).status_code
        == 404
    )
    assert other_agent.call("GET", f"{path}/renewal-offers").status_code == 404
    listed = other_agent.call("GET", "/policies?limit=200").json["items"]
    assert policy["id"] not in {p["id"] for p in listed}
    # Nor can they bind their colleague's quote.
    offered = quote(agent, new_customer(agent)["id"])
    assert other_agent.call("POST", f"/quotes/{offered['id']}/bind", json={}).status_code == 404

    assert agent.call("GET", path).status_code == 200
    assert admin.call("GET", path).status_code == 200
    own = agent.call("GET", "/policies?limit=200").json["items"]
    assert policy["id"] in {p["id"] for p in own}

    browser = other_agent.browser()
    assert browser.get(path).status_code == 404
    assert agent.browser().get(path).status_code == 200


def test_another_tenants_policy_is_404_on_the_api_and_the_screens(
    app: Flask, cover: Tenant, beta: Tenant, agent: Staff, beta_manager: Staff, products: dict
) -> None:
    policy = issued(agent, new_customer(agent)["id"])
    for method, path in (
        ("GET", f"/policies/{policy['id']}"),
        ("POST", f"/policies/{policy['id']}/issue"),
        ("GET", f"/policies/{policy['id']}/renewal-offers"),
    ):
        assert beta_manager.call(method, path).status_code == 404, path
    assert policy["id"] not in {
        p["id"] for p in beta_manager.call("GET", "/policies").json["items"]
    }
    assert beta_manager.browser().get(f"/policies/{policy['id']}").status_code == 404
    # Cover's token is no key to beta's host either.
    stranger = host_client(app, beta.slug).get(
        f"/api/v1/policies/{policy['id']}", headers={"Authorization": f"Bearer {agent.token}"}
    )
    assert stranger.status_code == 401


def test_policies_are_listed_newest_first_in_keyset_pages_with_filters(
    app: Flask, cover: Tenant, agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    start = plain_year_start()
    first = issued(agent, customer["id"], start=start)
    second = bound(agent, customer["id"], start=start)
    third = issued(
        agent, customer["id"], line=MOTOR, start=start + timedelta(days=1), risk=REFERENCE_MOTOR
    )

    page = agent.call("GET", f"/policies?customer_id={customer['id']}&limit=2").json
    assert [p["id"] for p in page["items"]] == [third["id"], second["id"]]
    assert page["items"][0]["premium"] == "14391.12" and page["items"][0]["product"] == MOTOR
    rest = agent.call(
        "GET", f"/policies?customer_id={customer['id']}&limit=2&cursor={page['next_cursor']}"
    ).json
    assert ([p["id"] for p in rest["items"]], rest["next_cursor"]) == ([first["id"]], None)

    def ids(query: str) -> list[int]:
        return [
            p["id"]
            for p in agent.call("GET", f"/policies?customer_id={customer['id']}&{query}").json[
                "items"
            ]
        ]

    assert ids("state=bound") == [second["id"]]
    assert ids(f"product={LINE}") == [second["id"], first["id"]]
    assert ids(f"agent_id={agent.agent_id}&state=in_force") == [third["id"], first["id"]]

    bad = agent.call("GET", "/policies?state=asleep&cursor=nope&limit=900")
    assert bad.status_code == 422
    assert set(bad.json["errors"]) >= {"state", "limit"}
    assert agent.call("GET", "/policies?cursor=nope").json["errors"] == {
        "cursor": ["Not a cursor this API gave."]
    }
