"""Agents screens: the hierarchy with licence status, an agent's page with their book,
and the bulk reassign form. Business rules live in core.agents; these views parse forms
and render (422 with the form and its errors on bad input).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from core.agents import operations, queries, rules
from core.agents.models import Agent
from core.hookspecs import MenuItem
from core.security import scope
from core.security.authz import has_permission, requires
from web import hosts, menu

bp = Blueprint("agents", __name__, url_prefix="/agents")

BOOK_PAGE = 200


def _territories(form: MultiDict[str, str]) -> list[str]:
    """One territory per line or comma."""
    raw = form.get("territories", "").replace("\n", ",")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _agent_form(form: MultiDict[str, str], fields: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in fields:
        if name == "territories":
            values[name] = _territories(form)
        elif name == "is_active":
            values[name] = form.get("is_active") == "on"
        elif name in ("team_id", "user_id"):
            values[name] = form.get(name) or None
        else:
            values[name] = form.get(name, "")
    return values


def _index(
    values: dict[str, Any], errors: dict[str, list[str]], status: int = 200
) -> tuple[str, int]:
    tree = queries.hierarchy()
    return (
        render_template(
            "agents/index.html",
            tree=tree,
            books=queries.team_books(),
            teams=queries.teams(),
            status=rules.licence_status,
            values=values,
            errors=errors,
        ),
        status,
    )


@bp.get("")
@requires("agents:read")
def index() -> ResponseReturnValue:
    return _index({}, {})


@bp.post("")
@requires("agents:create")
def create() -> ResponseReturnValue:
    values = _agent_form(request.form, operations.AGENT_FIELDS)
    try:
        agent = operations.create_agent(values)
    except operations.AgentInvalid as exc:
        return _index(request.form.to_dict(), exc.errors, 422)
    flash(f"{agent.email} is now an agent.", "success")
    return redirect(url_for("agents.show", agent_id=agent.id), 303)


def _show(
    agent: Agent, values: dict[str, Any], errors: dict[str, list[str]], status: int = 200
) -> tuple[str, int]:
    return (
        render_template(
            "agents/show.html",
            agent=agent,
            book=queries.book_counts([agent.id])[agent.id],
            status=rules.licence_status(agent),
            can_bind=rules.can_bind(agent),
            teams=queries.teams(),
            values=values,
            errors=errors,
        ),
        status,
    )


@bp.get("/<int:agent_id>")
@requires("agents:read")
def show(agent_id: int) -> ResponseReturnValue:
    agent = scope.get_or_404(Agent, agent_id)
    values = {
        "team_id": agent.team_id or "",
        "licence_number": agent.licence_number,
        "licence_expires_on": agent.licence_expires_on.isoformat(),
        "territories": ", ".join(agent.territories),
        "is_active": agent.is_active,
    }
    return _show(agent, values, {})


@bp.post("/<int:agent_id>")
@requires("agents:update")
def update(agent_id: int) -> ResponseReturnValue:
    values = _agent_form(request.form, operations.AGENT_UPDATABLE)
    try:
        agent = operations.update_agent(agent_id, values)
    except operations.AgentInvalid as exc:
        agent = scope.get_or_404(Agent, agent_id)
        shown = {**request.form.to_dict(), "is_active": values["is_active"]}
        return _show(agent, shown, exc.errors, 422)
    flash("Saved.", "success")
    return redirect(url_for("agents.show", agent_id=agent.id), 303)


def _assign(errors: dict[str, list[str]], status: int = 200) -> tuple[str, int]:
    source = operations.parse_id(request.values.get("from", ""))
    agents = queries.list_agents(limit=queries.PAGE_MAX).items
    customers = queries.book(source, limit=BOOK_PAGE) if source else []
    return (
        render_template(
            "agents/assign.html",
            agents=agents,
            source=source,
            customers=customers,
            chosen={operations.parse_id(v) for v in request.form.getlist("customer_ids")},
            target=request.form.get("agent_id", ""),
            errors=errors,
        ),
        status,
    )


@bp.get("/assign")
@requires("customers:update", "agents:read")
def assign_form() -> ResponseReturnValue:
    return _assign({})


@bp.post("/assign")
@requires("customers:update", "agents:read")
def assign() -> ResponseReturnValue:
    target = request.form.get("agent_id") or None
    try:
        changed = operations.assign_customers(request.form.getlist("customer_ids"), target)
    except operations.AgentInvalid as exc:
        return _assign(exc.errors, 422)
    flash(f"{changed} customer(s) reassigned.", "success")
    return redirect(url_for("agents.assign_form", **{"from": request.form.get("from", "")}), 303)


def licence_alerts() -> list[Agent]:
    """For the dashboard card: the caller's agents whose licence needs attention."""
    if not has_permission(current_user, "agents:read"):
        return []
    return queries.expiring_licences()


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    app.add_template_global(licence_alerts, "licence_alerts")
    app.add_template_global(rules.licence_status, "licence_status")
    menu.add_item(app, MenuItem("Agents", "agents.index", permission="agents:read", order=30))
