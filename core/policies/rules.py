"""Rules of the policies module: whose policies a caller reaches, and what binding needs.

Reach. A quote or a policy belongs to the customer's book, not to the agent who wrote
it: when a customer is reassigned, their policies follow them to the new agent's
book. So the rule is the customer's own reach rule (core.customers.rules.book),
applied as a subquery; a portal user (core.customers.portal) reaches the policies of
the customer they are, nothing else. Versions and renewal offers are reached
through their policy. Out of reach is 404 everywhere (core.security.scope).

Binding. Declarations are the questions a line asks before it binds, each of which
must be answered `true` (a "no" is for an underwriter to look at, not for the broker
to bind through): term life asks the three below. A line not listed asks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select

# Customer's own reach rule must be registered before this one is used: without it
# scope.visible(Customer) would be true() for everyone.
import core.customers.rules  # noqa: F401
from core.customers import portal
from core.customers import queries as customer_queries
from core.customers.models import Customer
from core.policies.models import FREQUENCIES, Policy, PolicyVersion, Quote, RenewalOffer
from core.security import scope

Errors = dict[str, list[str]]

REQUIRED = "This field is required."
REASON_MAX = 2000

# Line -> (declaration, the question as the form asks it).
DECLARATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "term_life": (
        ("good_health", "I am in good health and under no medical treatment or investigation."),
        ("smoker_status_true", "The smoker status in this quote is true."),
        ("no_hazardous_occupation", "I do not work in a hazardous occupation or pursuit."),
    ),
}


class PolicyInvalid(ValueError):
    """Input that breaks a rule; `errors` maps each field to its messages (422)."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


# --- Reach --------------------------------------------------------------------------


def _customers_in_reach(user: Any) -> Any:
    return select(Customer.id).where(scope.visible(Customer, user))


# Policy numbers are at most this long (policies.number).
NUMBER_MAX = 60


@customer_queries.found_by
def customers_by_policy_number(text: str) -> Any:
    """The search box finds a customer by any of their policies' numbers, as issued
    (`POL-2026-000001`, or typed in lower case). A number has a digit and no space."""
    if not re.search(r"\d", text) or " " in text or len(text) > NUMBER_MAX:
        return None
    return select(Policy.customer_id).where(Policy.number.in_({text, text.upper()}))


@scope.reach(Quote)
def quotes_in_reach(user: Any) -> ColumnElement[bool]:
    return Quote.customer_id.in_(_customers_in_reach(user))


@scope.reach(Policy)
def policies_in_reach(user: Any) -> ColumnElement[bool]:
    """Staff reach the policies of the customers they reach. A portal user reaches their
    own customer's, and only those: never the book, even where the tenant widened
    agents' books to the whole brokerage (which counts any signed-in user)."""
    if portal.is_portal_user(user):
        return Policy.customer_id.in_(portal.own_customer_ids(user))
    return Policy.customer_id.in_(_customers_in_reach(user))


def _policies(user: Any) -> Any:
    return select(Policy.id).where(policies_in_reach(user))


@scope.reach(PolicyVersion)
def versions_in_reach(user: Any) -> ColumnElement[bool]:
    return PolicyVersion.policy_id.in_(_policies(user))


@scope.reach(RenewalOffer)
def offers_in_reach(user: Any) -> ColumnElement[bool]:
    return RenewalOffer.policy_id.in_(_policies(user))


# --- Input --------------------------------------------------------------------------


def declarations_for(line_code: str) -> tuple[tuple[str, str], ...]:
    return DECLARATIONS.get(line_code, ())


def check_declarations(line_code: str, answers: Any, errors: Errors) -> dict[str, Any]:
    """The declarations as stored, or messages in `errors` for each one missing or not
    confirmed."""
    questions = declarations_for(line_code)
    if answers is None:
        answers = {}
    if not isinstance(answers, Mapping):
        errors["declarations"] = ["Send the declarations as an object of true/false answers."]
        return {}
    for name, _ in questions:
        answer = answers.get(name)
        if answer is None:
            errors[f"declarations.{name}"] = [REQUIRED]
        elif answer is not True:
            errors[f"declarations.{name}"] = [
                "Must be confirmed to bind; otherwise refer the case to underwriting."
            ]
    known = {name for name, _ in questions}
    for name in answers:
        if name not in known:
            errors[f"declarations.{name}"] = ["This product asks no such declaration."]
    return {name: answers[name] for name in known if name in answers}


def check_frequency(value: Any, errors: Errors) -> str:
    if value in (None, ""):
        return "annual"
    if value not in FREQUENCIES:
        errors["payment_frequency"] = [f"Must be one of: {', '.join(FREQUENCIES)}."]
        return "annual"
    return str(value)


def parse_date(value: Any, field: str, errors: Errors) -> date | None:
    if isinstance(value, date):
        return value
    if value in (None, ""):
        errors[field] = [REQUIRED]
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        errors[field] = ["Must be a date, YYYY-MM-DD."]
        return None


def check_reason(value: Any, errors: Errors, field: str = "reason") -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        errors[field] = [REQUIRED]
    elif len(text) > REASON_MAX:
        errors[field] = [f"Keep it to {REASON_MAX} characters."]
    return text
