"""Reading customers: by id within reach, search with keyset pages, likely duplicates,
and the masked view of a customer that screens and the API show.

Every read goes through the reach rule (core.customers.rules.book): out of reach is
the same as missing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask_login import current_user
from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import ClauseAdapter

from core import audit
from core.customers.models import COMPANY, STATUSES, Customer, CustomerContact
from core.customers.rules import NATIONAL_ID, PHONE_CHARACTERS, CustomerInvalid
from core.db import db
from core.security import pii, scope

PAGE_SIZE, PAGE_SIZE_MAX = 50, 200
# Trigram similarity of two names (0-1) from which they may be the same customer:
# "Jon Smith" / "John Smith" is 0.67, "Jane Doe" / "John Doe" 0.33.
DUPLICATE_NAME_SIMILARITY = 0.5
DUPLICATES_MAX = 20
# The trigram operator and function live in `public` (migrations/shared 0002_pg_trgm);
# tenant search paths leave it out, so they are always named with their schema.
TRGM_SIMILAR = "OPERATOR(public.%)"
_WORD = re.compile(r"\w+")
INT_MAX = 2**31 - 1  # ids are PostgreSQL integers
# How many customers in name order a one-word search looks through before it sorts
# all its matches instead, at most, and the share of matches that makes a longer walk
# worth it (see search).
WINDOW, WINDOW_MAX, WALK_DENSITY = 5000, 20_000, 0.005


def get(customer_id: int, user: Any = None) -> Customer:
    """The customer, if active and within the caller's reach; OutOfReach (404) otherwise."""
    if not 0 < customer_id <= INT_MAX:  # no such id: not even worth a query
        raise scope.OutOfReach()
    return scope.get_or_404(
        Customer, customer_id, visible_if=Customer.is_active.is_(True), user=user
    )


# --- Cursors --------------------------------------------------------------------------


def encode_cursor(customer: Customer) -> str:
    """Opaque to clients: where the next page starts, (sort_name, id) of the last row."""
    raw = json.dumps([customer.sort_name, customer.id], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, ident = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise CustomerInvalid({"cursor": ["Not a cursor this API gave."]}) from None
    if not isinstance(name, str) or type(ident) is not int or not 0 < ident <= INT_MAX:
        raise CustomerInvalid({"cursor": ["Not a cursor this API gave."]})
    return name, ident


# --- Search ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    q: str | None = None
    agent_id: int | None = None
    status: str | None = None
    tag: str | None = None


@dataclass
class Page:
    items: list[Customer] = field(default_factory=list)
    next_cursor: str | None = None


def _prefix_query(words: list[str]) -> Any:
    # Words are \w+ only, so nothing in them is tsquery syntax.
    return func.to_tsquery("simple", " & ".join(f"{word}:*" for word in words))


def matches(q: str) -> Any:
    """One box over names, email, phone, registration number (full text, prefixes)
    and the national id, exactly, through its blind index. Names by trigram
    similarity (typos) are `search`'s second try, when this finds nothing."""
    text = " ".join(q.split())
    conditions = []
    digits = re.sub(r"\D", "", text)
    # Before "@" is what tells an email apart: the words after it ("gmail", "com")
    # match half the book, and make the prefix search slow.
    local, at, domain = text.lower().partition("@")
    # A whole address finds that address, not every "jane" at every "gmail.com".
    whole_email = bool(at) and re.fullmatch(r"[^@\s]+\.[^@\s.]{2,}", domain) is not None
    compact = pii.normalise(text, "national_id")
    identifier = compact if NATIONAL_ID.match(compact) else None
    if at:
        # Stored lower-case (rules.clean_email); lower(email) is what is indexed.
        conditions.append(func.lower(Customer.email) == text.lower())
    if PHONE_CHARACTERS.match(text) and len(digits) >= 4:
        # The vector holds the phone as one run of digits: match it by prefix. Its
        # groups as words would add nothing but cost ("44:*" alone is a prefix of
        # every number on file).
        conditions.append(Customer.search_vector.op("@@")(_prefix_query([digits])))
    elif identifier and re.search(r"\d", identifier):
        # An id as typed ("QQ 12 34 56 C", "SC 123 456"): one word, as registration
        # numbers are in the vector. Its pieces would each be a prefix of thousands
        # of words ("c:*", "12:*").
        conditions.append(Customer.search_vector.op("@@")(_prefix_query([identifier.lower()])))
    elif not whole_email and (words := _WORD.findall(local)):
        conditions.append(Customer.search_vector.op("@@")(_prefix_query(words)))
    if identifier:
        conditions.append(pii.blind_match(Customer.national_id, text))
    return or_(*conditions) if conditions else None


def search(
    filters: Filters,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    user: Any = None,
) -> Page:
    """A page of active customers within reach, ordered by (sort_name, id).

    A query that `matches` nothing (within the other filters) is tried again as a
    name with a typo: names by trigram similarity. Only then: mixed in, those would
    bury "John Smith" among every "John" and every "Smith" (and cost a scan of them
    all at every keystroke). Which of the two a query is decided the same way on
    every page, so cursors go on where the last page ended.
    """
    if filters.status is not None and filters.status not in STATUSES:
        raise CustomerInvalid({"status": [f"Must be one of: {', '.join(STATUSES)}."]})
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    statement: Select[Any] = scope.scoped(
        select(Customer).where(Customer.is_active), Customer, user
    )
    if filters.agent_id is not None:
        statement = statement.where(Customer.agent_id == filters.agent_id)
    if filters.status is not None:
        statement = statement.where(Customer.status == filters.status)
    if filters.tag:
        statement = statement.where(Customer.tags.contains([filters.tag]))
    exact = similar = None
    one_word = False
    if filters.q and filters.q.strip():
        text = " ".join(filters.q.split()).lower()
        exact = matches(filters.q)
        one_word = text.isalpha()
        if one_word and len(text) <= 2:
            # One or two letters: names that begin with them, a range of the name
            # index, in order. As any word's prefix, they match a tenth of the book
            # or a few hundred customers bunched in one place of the order, and each
            # costs a long walk one way or the other. (The bound is the next string
            # in code-point order, as in the database's C.UTF-8 collation.)
            following = text[:-1] + chr(ord(text[-1]) + 1)
            exact = (Customer.sort_name >= text) & (Customer.sort_name < following)
            one_word = False
        if len(text) >= 3:
            similar = Customer.sort_name.op(TRGM_SIMILAR)(text)
        if exact is None:  # nothing but punctuation: only similarity can say anything
            exact, similar = similar, None
    whole = statement
    if cursor:
        statement = statement.where(
            tuple_(Customer.sort_name, Customer.id) > tuple_(*decode_cursor(cursor))
        )

    def in_order(condition: Any) -> list[Customer]:
        chosen = statement if condition is None else statement.where(condition)
        ordered = chosen.order_by(Customer.sort_name, Customer.id).limit(limit + 1)
        return list(db.session.scalars(ordered))

    def sorted_after(condition: Any) -> list[Customer]:
        # Every match, then sorted: `sort_name || ''` sorts the same but hides the
        # index's order, so PostgreSQL cannot choose to walk the whole book in name
        # order looking for rare matches.
        ordered = statement.where(condition).order_by(Customer.sort_name.concat(""), Customer.id)
        return list(db.session.scalars(ordered.limit(limit + 1)))

    def window(condition: Any, size: int) -> list[Customer]:
        walk = statement.order_by(Customer.sort_name, Customer.id).limit(size).subquery()
        row = aliased(Customer, walk)
        found = db.session.scalars(
            select(row)
            .where(ClauseAdapter(walk).traverse(condition))
            .order_by(row.sort_name, row.id)
            .limit(limit + 1)
        )
        return list(found)

    def window_first(condition: Any) -> list[Customer]:
        # One word as typed ("smit", "kwam") may match a few percent of the whole
        # book, spread over the name order, or a few hundred customers bunched in one
        # place of it, and PostgreSQL's estimates cannot tell which. So: the next
        # WINDOW customers in name order first (a page of a common word is there),
        # then every match, sorted. In between, when the window held some matches but
        # not a page, a longer walk is the cheaper bet down to WALK_DENSITY (walking
        # ~limit/density rows against sorting density x the book).
        size = WINDOW
        while len(rows := window(condition, size)) <= limit:
            density = len(rows) / size
            if density < WALK_DENSITY or size >= WINDOW_MAX:
                return sorted_after(condition)
            size = min(WINDOW_MAX, int((limit + 1) / density * 1.5))
        return rows

    # An agent's own book is small enough for any plan PostgreSQL picks.
    whole_book = one_word and scope.sees_whole_book(user)
    rows = (window_first if whole_book else in_order)(exact)
    # No rows: a typo, or past the last page of exact matches (only a cursor can be).
    typo = (
        similar is not None
        and not rows
        and (not cursor or not db.session.scalar(select(whole.where(exact).exists())))
    )
    if typo:
        rows = sorted_after(similar)
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items, encode_cursor(items[-1]) if more else None)


# --- Likely duplicates --------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    customer: Customer
    # Why it looks like the same customer: "name_and_date_of_birth", "name",
    # "email", "phone", "national_id", "registration_number".
    reasons: tuple[str, ...]


def _name_of(candidate: dict[str, Any]) -> str:
    if candidate.get("kind") == COMPANY:
        return (candidate.get("company_name") or "").lower()
    parts = (candidate.get("first_name"), candidate.get("last_name"))
    return " ".join(part for part in parts if part).lower()


def likely_duplicates(
    candidate: dict[str, Any], *, exclude_id: int | None = None, user: Any = None
) -> list[Duplicate]:
    """Active customers within reach that are probably `candidate` (clean values, as
    core.customers.rules.clean returns them): a similar name plus the same date of
    birth (people) or a similar name (companies), or the same email, phone, national
    id or registration number. Those outside the caller's reach are not shown: their
    existence is not the caller's to learn."""
    base = scope.scoped(select(Customer).where(Customer.is_active), Customer, user)
    if exclude_id is not None:
        base = base.where(Customer.id != exclude_id)
    found: dict[int, tuple[Customer, list[str]]] = {}

    def note(customer: Customer, reason: str) -> None:
        found.setdefault(customer.id, (customer, []))[1].append(reason)

    name = _name_of(candidate)
    if len(name) >= 3:
        similarity = func.public.similarity(Customer.sort_name, name)
        similar = db.session.scalars(
            base.where(Customer.sort_name.op(TRGM_SIMILAR)(name))
            .where(similarity >= DUPLICATE_NAME_SIMILARITY)
            .order_by(similarity.desc(), Customer.id)
            .limit(DUPLICATES_MAX * 3)
        )
        for customer in similar:
            if candidate.get("kind") == COMPANY:
                note(customer, "name")
            # Dates of birth are encrypted (and low-entropy: no blind index), so they are
            # compared here, among the few similar names.
            elif candidate.get("date_of_birth") and (
                customer.date_of_birth == candidate["date_of_birth"]
            ):
                note(customer, "name_and_date_of_birth")

    identifiers = []
    if candidate.get("email"):
        identifiers.append(("email", Customer.email == candidate["email"]))
    if candidate.get("phone"):
        identifiers.append(("phone", Customer.phone == candidate["phone"]))
    if candidate.get("national_id"):
        identifiers.append(
            ("national_id", pii.blind_match(Customer.national_id, candidate["national_id"]))
        )
    if candidate.get("registration_number"):
        identifiers.append(
            (
                "registration_number",
                func.upper(Customer.registration_number)
                == candidate["registration_number"].upper(),
            )
        )
    if identifiers:
        rows = db.session.scalars(
            base.where(or_(*(condition for _, condition in identifiers)))
            .order_by(Customer.id)
            .limit(DUPLICATES_MAX)
        )
        for customer in rows:
            for reason, _ in identifiers:
                if _same(customer, reason, candidate):
                    note(customer, reason)
    ranked = sorted(found.values(), key=lambda pair: (-len(pair[1]), pair[0].id))
    return [Duplicate(customer, tuple(reasons)) for customer, reasons in ranked[:DUPLICATES_MAX]]


def _same(customer: Customer, reason: str, candidate: dict[str, Any]) -> bool:
    if reason == "national_id":
        return customer.national_id_index == pii.index_value(
            Customer.national_id, candidate["national_id"]
        )
    if reason == "registration_number":
        return (customer.registration_number or "").upper() == candidate[reason].upper()
    return getattr(customer, reason) == candidate[reason]


# --- What a caller sees -----------------------------------------------------------------

SHOWN = (
    "id",
    "kind",
    "first_name",
    "last_name",
    "date_of_birth",
    "company_name",
    "registration_number",
    "national_id",
    "email",
    "phone",
    "preferred_channel",
    "address",
    "marketing_consent",
    "consent_at",
    "kyc_status",
    "notes",
    "tags",
    "agent_id",
    "status",
    "merged_into",
    "created_at",
    "updated_at",
)


def visible(customer: Customer, user: Any = None) -> dict[str, Any]:
    """The customer as `user` may see them (personal data masked per permission),
    JSON-ready."""
    subject = current_user if user is None else user
    values = pii.visible_values(
        Customer.__table__, {name: getattr(customer, name) for name in SHOWN}, subject
    )
    values["name"] = customer.display_name
    values["contacts"] = [
        pii.visible_values(
            CustomerContact.__table__,
            {"id": c.id, "label": c.label, "email": c.email, "phone": c.phone},
            subject,
        )
        for c in customer.contacts
    ]
    return audit.jsonable(values)


def brief(customer: Customer) -> dict[str, Any]:
    """Id and display name only: enough to tell which customer, nothing masked away."""
    return {"id": customer.id, "name": customer.display_name, "kind": customer.kind}
