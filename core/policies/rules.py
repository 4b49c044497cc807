"""Reach of quotes and policies: those of the customers the caller reaches.

A quote or a policy belongs to the customer's book, not to the agent who wrote it:
when a customer is reassigned, their policies follow them to the new agent's book.
So the rule is the customer's own reach rule (core.customers.rules.book), applied as
a subquery; out of reach is 404 everywhere (core.security.scope).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select

# Customer's own reach rule must be registered before this one is used: without it
# scope.visible(Customer) would be true() for everyone.
import core.customers.rules  # noqa: F401
from core.customers.models import Customer
from core.policies.models import Policy, Quote
from core.security import scope


def _customers_in_reach(user: Any) -> Any:
    return select(Customer.id).where(scope.visible(Customer, user))


@scope.reach(Quote)
def quotes_in_reach(user: Any) -> ColumnElement[bool]:
    return Quote.customer_id.in_(_customers_in_reach(user))


@scope.reach(Policy)
def policies_in_reach(user: Any) -> ColumnElement[bool]:
    return Policy.customer_id.in_(_customers_in_reach(user))
