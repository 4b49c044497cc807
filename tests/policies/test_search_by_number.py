"""The customer search box finds a customer by a policy number (issue 4: "once
policies exist, policy number"), as issued or typed in lower case, within the caller's
reach only; part of a number finds nothing by it."""

from __future__ import annotations

from urllib.parse import quote as urlquote

from flask import Flask

from core.tenancy import Tenant
from tests.policies.conftest import Staff, issued, new_customer


def _found(staff: Staff, q: str) -> list[int]:
    answer = staff.call("GET", f"/customers?q={urlquote(q)}")
    assert answer.status_code == 200, answer.json
    return [item["id"] for item in answer.json["items"]]


def test_a_policy_number_finds_its_customer_within_reach(
    app: Flask, cover: Tenant, agent: Staff, other_agent: Staff, products: dict
) -> None:
    customer = new_customer(agent)
    number = issued(agent, customer["id"])["number"]
    assert number
    assert _found(agent, number) == [customer["id"]]
    assert _found(agent, number.lower()) == [customer["id"]]
    assert _found(agent, f"  {number} ") == [customer["id"]]
    assert customer["id"] not in _found(agent, number[:-1] + "X")
    # Another agent's search does not reach the customer, whatever the number says.
    assert _found(other_agent, number) == []
