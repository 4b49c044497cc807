"""Object-level reach: rows outside the caller's reach are 404, in queries and by id.

The scenario is a throwaway table created in alpha's schema, as alpha's role, inside the
test's rolled-back transaction: `probe` rows each assigned to an agent, like customers
in an agent's book.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, current_app
from flask_login import AnonymousUserMixin
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core import settings
from core.db import db
from core.security import scope
from core.security.models import User
from tests.conftest import PASSWORD, host_client
from tests.security.conftest import create_user, role_email


class ProbeBase(DeclarativeBase):
    """Not core.db.Base: the probe is no part of the tenant schema's migrations."""


class Probe(ProbeBase):
    __tablename__ = "scope_probe"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int | None]
    label: Mapped[str]


@pytest.fixture
def book(alpha_db: None, role_users: dict) -> Iterator[dict[str, object]]:
    """Two agents' books and a manager, with the reach rule of an agent's book."""
    db.session.execute(
        text(
            "CREATE TABLE scope_probe (id serial PRIMARY KEY,"
            " agent_id integer REFERENCES users (id), label text NOT NULL)"
        )
    )
    users = {
        email: db.session.scalars(select(User).where(User.email == email)).one()
        for email in (role_email("agent", "alpha"), role_email("manager", "alpha"))
    }
    agent, manager = users.values()
    other_agent = current_app.extensions["security"].datastore.create_user(
        email="other.agent@alpha.example.com", active=True, roles=list(agent.roles)
    )
    db.session.flush()
    mine = Probe(agent_id=agent.id, label="mine")
    theirs = Probe(agent_id=other_agent.id, label="theirs")
    db.session.add_all([mine, theirs])
    db.session.flush()
    scope.reach(Probe)(lambda user: scope.book(Probe.agent_id, user))
    try:
        yield {"agent": agent, "manager": manager, "mine": mine, "theirs": theirs}
    finally:
        scope.forget(Probe)


def labels(user: object) -> list[str]:
    statement = scope.scoped(select(Probe.label).order_by(Probe.label), Probe, user)
    return list(db.session.scalars(statement))


def test_an_agent_reaches_their_own_book_only(book: dict) -> None:
    agent, mine, theirs = book["agent"], book["mine"], book["theirs"]
    assert labels(agent) == ["mine"]
    assert scope.get_or_404(Probe, mine.id, user=agent) is mine
    with pytest.raises(scope.OutOfReach) as missing:
        scope.get_or_404(Probe, theirs.id, user=agent)
    assert missing.value.code == 404
    # Out of reach and nonexistent look the same.
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, theirs.id + 1000, user=agent)


def test_agents_read_grants_the_whole_brokerage(book: dict) -> None:
    manager = book["manager"]
    assert labels(manager) == ["mine", "theirs"]
    assert scope.get_or_404(Probe, book["theirs"].id, user=manager).label == "theirs"


def test_the_tenant_setting_widens_an_agents_book(book: dict) -> None:
    settings.set(scope.BOOK_SCOPE_SETTING, "all")
    assert labels(book["agent"]) == ["mine", "theirs"]
    settings.set(scope.BOOK_SCOPE_SETTING, "own")
    assert labels(book["agent"]) == ["mine"]


def test_nobody_signed_in_reaches_nothing(book: dict) -> None:
    assert labels(AnonymousUserMixin()) == []
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, book["mine"].id, user=AnonymousUserMixin())


def test_a_call_site_may_narrow_further(book: dict) -> None:
    manager, mine = book["manager"], book["mine"]
    assert scope.get_or_404(Probe, mine.id, user=manager, visible_if=Probe.label == "mine")
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, mine.id, user=manager, visible_if=Probe.label == "other")
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, mine.id, user=manager, visible_if=lambda row: row.label == "x")
    assert scope.get_or_404(Probe, mine.id, user=manager, visible_if=lambda row: True) is mine


def test_a_customer_reaches_rows_they_own(book: dict) -> None:
    agent = book["agent"]
    owned = select(Probe.label).where(scope.owned_by(Probe.agent_id, agent))
    assert list(db.session.scalars(owned)) == ["mine"]


def test_a_model_has_one_rule(book: dict) -> None:
    with pytest.raises(ValueError, match="already has a reach rule"):
        scope.reach(Probe)(lambda user: scope.owned_by(Probe.agent_id, user))


def test_out_of_reach_over_http_is_a_404_page(probe_app: Flask, app: Flask, alpha) -> None:
    """A user may open their own row; another user's row is 404, like a missing one."""
    own = create_user(app, alpha, "reach.self@alpha.example.com", ["agent"])
    other = create_user(app, alpha, "reach.other@alpha.example.com", ["agent"])
    client = host_client(probe_app, "alpha")
    login = client.post(
        "/login", data={"email": "reach.self@alpha.example.com", "password": PASSWORD}
    )
    assert login.status_code == 302
    assert client.get(f"/probe/users/{own}").text == "reach.self@alpha.example.com"
    for user_id in (other, 10**6):
        response = client.get(f"/probe/users/{user_id}")
        assert response.status_code == 404, user_id
        assert "Nothing was found at this address." in response.text


# --- Remembered reach: built once per caller, never shared between callers -------------


def test_a_remembered_statement_is_each_callers_own(book: dict) -> None:
    agent, mine, theirs = book["agent"], book["mine"], book["theirs"]
    other = db.session.scalars(
        select(User).where(User.email == "other.agent@alpha.example.com")
    ).one()
    for _ in range(2):  # the second time round, every statement is a remembered one
        assert scope.get_or_404(Probe, mine.id, user=agent) is mine
        assert scope.get_or_404(Probe, theirs.id, user=other) is theirs
        with pytest.raises(scope.OutOfReach):
            scope.get_or_404(Probe, theirs.id, user=agent)
        with pytest.raises(scope.OutOfReach):
            scope.get_or_404(Probe, mine.id, user=other)


def test_remembered_reach_follows_the_setting_and_the_callers_roles(book: dict) -> None:
    agent, theirs = book["agent"], book["theirs"]
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, theirs.id, user=agent)  # remembered: own book
    settings.set(scope.BOOK_SCOPE_SETTING, "all")
    assert scope.get_or_404(Probe, theirs.id, user=agent) is theirs
    settings.set(scope.BOOK_SCOPE_SETTING, "own")
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, theirs.id, user=agent)
    manager_roles = list(book["manager"].roles)
    agent.roles.extend(manager_roles)  # agents:read: the whole brokerage
    assert scope.get_or_404(Probe, theirs.id, user=agent) is theirs
    for role in manager_roles:
        agent.roles.remove(role)
    with pytest.raises(scope.OutOfReach):
        scope.get_or_404(Probe, theirs.id, user=agent)


def _labels_once(user: object) -> list[str]:
    def build() -> object:
        return select(Probe.label).where(Probe.id > bindparam("after")).order_by(Probe.label)

    statement = scope.scoped_once("probe.labels", build, Probe, user)
    return list(db.session.scalars(statement, {"after": 0}))


def test_a_statement_built_once_is_each_callers_own_and_follows_the_setting(
    book: dict,
) -> None:
    agent, manager = book["agent"], book["manager"]
    other = db.session.scalars(
        select(User).where(User.email == "other.agent@alpha.example.com")
    ).one()
    for _ in range(2):  # the second time round, each is the remembered statement
        assert _labels_once(agent) == ["mine"]
        assert _labels_once(other) == ["theirs"]
        assert _labels_once(manager) == ["mine", "theirs"]
    assert scope.scoped_once("probe.labels", lambda: select(Probe.label), Probe, agent) is (
        scope.scoped_once("probe.labels", lambda: select(Probe.id), Probe, agent)
    )
    settings.set(scope.BOOK_SCOPE_SETTING, "all")
    assert _labels_once(agent) == ["mine", "theirs"]
    settings.set(scope.BOOK_SCOPE_SETTING, "own")
    assert _labels_once(agent) == ["mine"]
    assert _labels_once(AnonymousUserMixin()) == []
