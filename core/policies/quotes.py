"""Quotes: a customer's risk priced on the product version in force on its start date.

`create_quote` checks its caller (`policies:create`, and the customer within their
reach: 404 otherwise), rates through core.products.rating and stores the risk as rated,
the premium, the trace and the rate table version, audited, in one transaction.
`preview` rates without writing (the live quote screen, option comparisons);
`replay_quote` re-rates a stored quote on the exact table version its trace names.

Refusals are `RatingRefused` (core.products.rules) naming every bad field at once:
`customer_id`, `agent_id`, `product`, `start_date`, `risk.<field>`. Nothing is written
then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, func, insert, select

from core import audit
from core.agents import queries as agent_queries
from core.agents.models import Agent
from core.customers.models import Customer
from core.db import committed, db
from core.policies.models import OPEN, Quote
from core.policies.rules import quotes_in_reach  # noqa: F401  (registers the reach rule)
from core.products import rating
from core.products.rules import Errors, RatingRefused
from core.security import scope
from core.security.authz import authorize

# A quote may start up to a year after today (cover is bought ahead of a renewal
# elsewhere) and up to a year before (a broker recording business already agreed).
START_DATE_WINDOW = timedelta(days=366)
INT_MAX = 2**31 - 1


def check_start_date(value: Any, today: date | None = None) -> date:
    """A quote's start date: a date within START_DATE_WINDOW of today. ValueError."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()) if len(value.strip()) == 10 else None
        except ValueError:
            value = None
    if not isinstance(value, date):
        raise ValueError("Must be a date, YYYY-MM-DD.")
    today = today or date.today()
    if not today - START_DATE_WINDOW <= value <= today + START_DATE_WINDOW:
        raise ValueError("Must be within a year of today.")
    return value


def _agent_errors(agent_id: Any, customer_agent: int | None, user: Any) -> Errors:
    """A quote is written for the customer's agent unless someone who manages
    customers names another active agent in their reach."""
    if agent_id is None or agent_id == customer_agent:
        return {}
    if isinstance(agent_id, bool) or not isinstance(agent_id, int) or not 0 < agent_id <= INT_MAX:
        return {"agent_id": ["Must be an agent's id."]}
    if not agent_queries.manages_customers(user):
        return {"agent_id": ["The quote is written for the customer's own agent."]}
    active = select(Agent.id).where(Agent.id == agent_id, Agent.is_active)
    if db.session.scalar(scope.scoped(active, Agent, user)) is None:
        return {"agent_id": ["No active agent has this id."]}
    return {}


class _Customer(NamedTuple):
    id: int
    agent_id: int | None


def _customer_statement() -> Select[tuple[int, int | None]]:
    return select(Customer.id, Customer.agent_id).where(
        Customer.id == bindparam("customer_id"), Customer.is_active.is_(True)
    )


def _customer_in_reach(customer_id: int, user: Any) -> _Customer:
    """The customer's id and agent if active and within reach, OutOfReach otherwise.
    A quote needs no more of the record, so none of it (personal data) is read."""
    statement = scope.scoped_once("quotes.customer", _customer_statement, Customer, user)
    row = db.session.execute(statement, {"customer_id": customer_id}).one_or_none()
    if row is None:
        raise scope.OutOfReach()
    return _Customer(row.id, row.agent_id)


# The quote's own values, bound as parameters of `_insert_statement`.
_VALUES = (
    "product_id",
    "product_version_id",
    "line_code",
    "rate_table_version",
    "start_date",
    "risk",
    "premium",
    "currency",
    "trace",
    "status",
    "created_by",
    "updated_by",
)


def _insert_statement(customer_in_reach: ColumnElement[bool]) -> Select[tuple[Quote]]:
    """`INSERT INTO quotes (...) SELECT <values> FROM customers WHERE <the customer,
    active and in reach> RETURNING *`, as a statement loading the new Quote.

    The check of the customer and the write are one statement, on one snapshot: no
    second round trip, and no gap between the two in which the customer could leave
    the caller's reach (or be deactivated). No row returned: the customer is out of
    reach. The quote's agent is the one named, or else the customer's own.
    """
    table = Quote.__table__
    source = select(
        Customer.id,
        func.coalesce(bindparam("agent_id", type_=table.c.agent_id.type), Customer.agent_id),
        *(bindparam(name, type_=table.c[name].type) for name in _VALUES),
    ).where(
        Customer.id == bindparam("customer_id"), Customer.is_active.is_(True), customer_in_reach
    )
    written = insert(table).from_select(["customer_id", "agent_id", *_VALUES], source)
    return select(Quote).from_statement(written.returning(*table.c))


def create_quote(
    *,
    customer_id: int,
    line_code: str,
    start_date: Any,
    risk: Mapping[str, Any],
    agent_id: int | None = None,
    user: Any = None,
) -> Quote:
    """Price `risk` of product `line_code` for the customer and store the quote.
    OutOfReach (404) for a customer outside the caller's reach; RatingRefused naming
    every bad field otherwise, with nothing written. An unreachable customer is
    reported as such whatever else is wrong, so a refusal never says whether the
    customer exists."""
    authorize("policies:create", user)
    if isinstance(customer_id, bool) or not isinstance(customer_id, int):
        raise RatingRefused({"customer_id": ["Must be a customer's id."]})
    if not 0 < customer_id <= INT_MAX:
        raise scope.OutOfReach()
    errors: Errors = {}
    if agent_id is not None:
        # Whether another agent may be named depends on the customer's own.
        customer = _customer_in_reach(customer_id, user)
        errors |= _agent_errors(agent_id, customer.agent_id, user)
    start: date | None = None
    try:
        start = check_start_date(start_date)
    except ValueError as exc:
        errors["start_date"] = [str(exc)]
    rated = None
    try:
        # With no valid start date the risk is still checked, on today's version, so
        # one answer names every bad field.
        rated = rating.rate(line_code, risk, start or date.today())
    except RatingRefused as refused:
        errors = refused.errors | errors  # our start_date message is the more precise one
    if errors:
        if agent_id is None:
            _customer_in_reach(customer_id, user)  # 404 comes before 422
        raise RatingRefused(errors)
    assert rated is not None and start is not None
    actor = audit.current_actor()
    values = {
        "customer_id": customer_id,
        "agent_id": agent_id,
        "product_id": rated.product.id,
        "product_version_id": rated.version.id,
        "line_code": rated.product.line_code,
        "rate_table_version": rated.rate_table.version,
        "start_date": start,
        "risk": rated.risk,
        "premium": rated.premium,
        "currency": rated.currency,
        "trace": rated.trace,
        "status": OPEN,
        "created_by": actor,
        "updated_by": actor,
    }
    statement = scope.built_once("quotes.insert", _insert_statement, Customer, user)

    def work() -> Quote:
        quote = db.session.scalars(statement, values).one_or_none()
        if quote is None:
            raise scope.OutOfReach()
        audit.record(
            "quotes.create",
            entity="quotes",
            entity_id=quote.id,
            after=audit.snapshot(quote, exclude=("trace",)),
        )
        return quote

    return committed(work, keep_loaded=True)


def get_quote(quote_id: int, user: Any = None) -> Quote:
    """The quote, if its customer is within the caller's reach; OutOfReach otherwise."""
    if isinstance(quote_id, bool) or not isinstance(quote_id, int) or not 0 < quote_id <= INT_MAX:
        raise scope.OutOfReach()
    return scope.get_or_404(Quote, quote_id, active_only=True, user=user)


def quotes_of(customer_id: int, *, limit: int = 50, user: Any = None) -> list[Quote]:
    """The customer's latest quotes within reach, newest first."""
    statement = scope.scoped(
        select(Quote)
        .where(Quote.customer_id == customer_id, Quote.is_active.is_(True))
        .order_by(Quote.id.desc())
        .limit(limit),
        Quote,
        user,
    )
    return list(db.session.scalars(statement))


def preview(
    line_code: str, start_date: Any, risk: Mapping[str, Any], *, user: Any = None
) -> rating.Rated:
    """What a quote would cost, without writing anything (the live quote screen)."""
    authorize("policies:create", user)
    errors: Errors = {}
    start = None
    try:
        start = check_start_date(start_date)
    except ValueError as exc:
        errors["start_date"] = [str(exc)]
    try:
        rated = rating.rate(line_code, risk, start or date.today())
    except RatingRefused as refused:
        errors = refused.errors | errors
    if errors:
        raise RatingRefused(errors)
    return rated


def replay_quote(quote: Quote) -> rating.Rated:
    """Re-rate `quote` from its stored risk on the table version its trace names."""
    return rating.replay(quote)


def replays_exactly(quote: Quote) -> bool:
    """True when a replay gives the stored premium to the cent and every stored step."""
    return not rating.differences(quote.premium, quote.trace, replay_quote(quote))
