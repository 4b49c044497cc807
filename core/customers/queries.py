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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask_login import current_user
from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select, tuple_
from sqlalchemy.orm import aliased
from sqlalchemy.sql.util import ClauseAdapter

from core import audit
from core.agents import queries as agent_queries
from core.customers.models import (
    COMPANY,
    IDENTITY_FIELDS,
    STATUSES,
    Customer,
    CustomerContact,
    identity_value,
)
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
# Shaped as a name: letters, with spaces, hyphens or apostrophes between them.
_NAME_SHAPED = re.compile(r"[^\W\d_]+(?:[ '\-][^\W\d_]*)*")
INT_MAX = 2**31 - 1  # ids are PostgreSQL integers
# How many customers in name order a one-word search looks through before it sorts
# all its matches instead, at most, and the share of matches that makes a longer walk
# worth it (see search).
WINDOW, WINDOW_MAX, WALK_DENSITY = 5000, 20_000, 0.005


def get(customer_id: int, user: Any = None) -> Customer:
    """The customer, if active and within the caller's reach; OutOfReach (404) otherwise."""
    if not 0 < customer_id <= INT_MAX:  # no such id: not even worth a query
        raise scope.OutOfReach()
    return scope.get_or_404(Customer, customer_id, active_only=True, user=user)


# --- Cursors --------------------------------------------------------------------------


def _encode(value: list[Any]) -> str:
    raw = json.dumps(value, ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode_cursor(customer: Customer) -> str:
    """Opaque to clients: where the next page of the whole book (no query) starts,
    (sort_name, id) of the last row."""
    return _encode([customer.sort_name, customer.id])


def _decode(cursor: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != size
        or not isinstance(value[-2], str)
        or type(value[-1]) is not int
        or not 0 < value[-1] <= INT_MAX
        or (size == 3 and type(value[0]) is not int)
    ):
        raise CustomerInvalid({"cursor": ["Not a cursor this API gave."]})
    return value


def decode_cursor(cursor: str) -> tuple[str, int]:
    name, ident = _decode(cursor, 2)
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


# Ways other modules find a customer by what the box holds (core.policies: a policy
# number): `finder(text)` answers SQL selecting customer ids (an indexed look-up, run
# before the search), or None when the text cannot be one of theirs. Registered with
# `found_by`, so customers know no policies.
Finder = Callable[[str], Any]
_FINDERS: list[Finder] = []


def found_by(finder: Finder) -> Finder:
    """Register `finder`: the search's one box also finds the customers it selects."""
    if finder not in _FINDERS:
        _FINDERS.append(finder)
    return finder


def matches(q: str) -> Any:
    """One box over names, email, phone, registration number (full text, prefixes),
    the national id, exactly, through its blind index, and what other modules find
    (`found_by`: a policy number). Names by trigram
    similarity (typos) are `search`'s last try, when this finds nothing."""
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
    for finder in _FINDERS:
        found = finder(text)
        # Looked up first, on their own: as a subquery ORed with the rest, they would
        # turn every index condition of the search into a filter over the whole book
        # (bench/customers.py: emails and ids at 1.8 s instead of 2 ms).
        ids = list(db.session.scalars(found)) if found is not None else []
        if ids:
            conditions.append(Customer.id.in_(ids))
    return or_(*conditions) if conditions else None


def surname_first() -> ColumnElement[str]:
    """models.SURNAME_FIRST_SQL as an expression (constants inline, never parameters,
    so that it is the indexed expression in every plan, generic ones included)."""
    empty = literal_column("''")
    return func.lower(
        func.btrim(
            func.coalesce(Customer.last_name, empty)
            .concat(literal_column("' '"))
            .concat(func.coalesce(Customer.first_name, empty))
        )
    )


def _begins(key: Any, text: str) -> ColumnElement[bool]:
    """`key` begins with `text`: a range of its index, in order. (The bound is the
    next string in code-point order, as in the database's C.UTF-8 collation.)"""
    return (key >= text) & (key < text[:-1] + chr(ord(text[-1]) + 1))


@dataclass(frozen=True)
class _Tier:
    """One part of a search's answer, in its own order (see search)."""

    number: int
    condition: Any
    key: Any
    # "ordered": by the key, as PostgreSQL plans it (a name part: a range of its
    # index, in order); "words": a name-shaped query's full text (_window_first);
    # "similar": every match, sorted.
    how: str


BEGINS, SURNAME_BEGINS, WORDS, SIMILAR = 1, 2, 3, 4


def _tiers(text: str) -> list[_Tier]:
    """The parts of a search for `text` (collapsed, lower-case), in order."""
    tiers = []
    if _NAME_SHAPED.fullmatch(text):
        key = surname_first()
        begins, surname = _begins(Customer.sort_name, text), _begins(key, text)
        tiers += [
            _Tier(BEGINS, begins, Customer.sort_name, "ordered"),
            _Tier(SURNAME_BEGINS, and_(surname, ~begins), key, "ordered"),
        ]
        # Read only when no name begins with the query (see search). One or two
        # letters are a word's prefix in a tenth of the book: names that begin with
        # them are what such a query is for.
        if len(text) > 2 and (exact := matches(text)) is not None:
            tiers.append(_Tier(WORDS, exact, Customer.sort_name, "words"))
    elif (exact := matches(text)) is not None:
        tiers.append(_Tier(WORDS, exact, Customer.sort_name, "ordered"))
    if len(text) >= 3:
        similar = Customer.sort_name.op(TRGM_SIMILAR)(text)
        tiers.append(_Tier(SIMILAR, similar, Customer.sort_name, "similar"))
    return tiers


def search(
    filters: Filters,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    user: Any = None,
) -> Page:
    """A page of active customers within reach.

    Without a query: the whole book (or what the filters leave), by (sort_name, id).

    With one shaped as a name (letters, spaces, hyphens, apostrophes), the names
    that begin with it, in two parts:

    1. names that begin with the query ("james smi": James Smith, James Smithfield;
       a company's name), by name;
    2. then people whose surname, then first name, begin with it ("smit": the
       Smiths, then the Smithsons; "smith ja": James Smith), by surname and name.

    3. Only if no name begins with it (and for any other query: an email, a phone
       number, an id): what the query `matches`, a word anywhere (of a name, an
       email, a registration number), by name. One or two letters stop at 2.
    4. Only if nothing else matches: names similar to the query (a typo), by name.

    Parts 1 and 2 are each a range of a name index, so a page of a common name
    costs what a page of the whole book does, where all its matches in name order
    cost a walk of thousands of rows or a sort of tens of thousands, and the
    full-text look-up of a common word's prefix alone several times a page of names
    (bench/customers.py, 1,000,000 customers). What is left out when names begin
    with the query: its words inside other names and in emails ("oak" finds the
    Oakleys, not "Harbour Oak Ltd" then; "harbour oak" or "oak harbour" does). A
    cursor names the part and the place in it.
    """
    if filters.status is not None and filters.status not in STATUSES:
        raise CustomerInvalid({"status": [f"Must be one of: {', '.join(STATUSES)}."]})
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    statement: Select[Any] = scope.scoped(
        select(Customer).where(Customer.is_active), Customer, user
    )
    subject = current_user if user is None else user
    if not agent_queries.manages_customers(subject) and getattr(subject, "id", None):
        # An agent's own book: what the reach rule says already (rules.book), spelled
        # as one value, so that PostgreSQL reads the book's own indexes however
        # wrongly it estimates a name range of the whole book's (an agents.user_id is
        # unique: one value or none).
        own = agent_queries.own_agent_ids(subject.id).scalar_subquery()
        statement = statement.where(Customer.agent_id == own)
    if filters.agent_id is not None:
        statement = statement.where(Customer.agent_id == filters.agent_id)
    if filters.status is not None:
        statement = statement.where(Customer.status == filters.status)
    if filters.tag:
        statement = statement.where(Customer.tags.contains([filters.tag]))
    q = " ".join((filters.q or "").split()).lower()
    tiers = _tiers(q) if q else []
    if not tiers:
        after = decode_cursor(cursor) if cursor else None
        found = _in_order(statement, Customer.sort_name, after, limit + 1)
        items = [customer for _, customer in found[:limit]]
        return Page(items, encode_cursor(items[-1]) if len(found) > limit else None)

    start, after = tiers[0].number, None
    if cursor:
        start, name, ident = _decode(cursor, 3)
        if start not in {tier.number for tier in tiers}:
            raise CustomerInvalid({"cursor": ["Not a cursor this API gave."]})
        after = (name, ident)
    whole_book = scope.sees_whole_book(user)
    rows: list[tuple[int, str, Customer]] = []

    def read(tier: _Tier) -> None:
        chosen = statement.where(tier.condition)
        place = after if tier.number == start else None
        wanted = limit + 1 - len(rows)
        if tier.how == "similar":
            found = _sorted_after(chosen, place, wanted)
        elif tier.how == "words" and whole_book and q.isalpha():
            # One word over the whole book: PostgreSQL cannot tell a word in a few
            # percent of it from one in a few hundred rows (_window_first).
            found = _window_first(statement, tier.condition, place, wanted)
        else:
            # A book, not the whole: its matches, sorted, through the book's own
            # indexes (in name order, PostgreSQL would walk the whole book's).
            found = _in_order(chosen, tier.key, place, wanted, sort=not whole_book)
        rows.extend((tier.number, key, customer) for key, customer in found)

    for tier in tiers:
        if not start <= tier.number < SIMILAR or len(rows) > limit:
            continue
        # Names began with the query (on this page, or a cursor into them says so).
        if tier.number == WORDS and (rows or (cursor and start < WORDS)):
            break
        read(tier)
    similar = [tier for tier in tiers if tier.number == SIMILAR]
    # A typo: nothing else matched (on this first page; a cursor means it had).
    if similar and (start == SIMILAR or (not cursor and not rows)):
        read(similar[0])
    items = [customer for _, _, customer in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        number, key, last = rows[limit - 1]
        next_cursor = _encode([number, key, last.id])
    return Page(items, next_cursor)


Found = list[tuple[str, Customer]]


def _after(chosen: Select[Any], key: Any, after: tuple[str, int] | None) -> Select[Any]:
    if after is None:
        return chosen
    return chosen.where(tuple_(key, Customer.id) > tuple_(*after))


def _in_order(
    chosen: Select[Any], key: Any, after: tuple[str, int] | None, wanted: int, sort: bool = False
) -> Found:
    """(key, customer) of the first `wanted` rows by (key, id), as PostgreSQL plans it
    (for a name range: that range of the name index, in order); `sort`: every row,
    then sorted (`key || ''` sorts the same, but no index has its order)."""
    order = key.concat("") if sort else key
    ordered = _after(chosen, key, after).order_by(order, Customer.id).limit(wanted)
    if key is Customer.sort_name:
        return [(customer.sort_name, customer) for customer in db.session.scalars(ordered)]
    return [(value, customer) for customer, value in db.session.execute(ordered.add_columns(key))]


def _sorted_after(chosen: Select[Any], after: tuple[str, int] | None, wanted: int) -> Found:
    """Every match, then sorted by name: `sort_name || ''` sorts the same but hides
    the index's order, so PostgreSQL cannot choose to walk the whole book in name
    order looking for rare matches."""
    ordered = _after(chosen, Customer.sort_name, after).order_by(
        Customer.sort_name.concat(""), Customer.id
    )
    return [(c.sort_name, c) for c in db.session.scalars(ordered.limit(wanted))]


def _window(book: Select[Any], condition: Any, size: int, wanted: int) -> Found:
    """The matches among the next `size` rows of `book` in name order."""
    walk = book.order_by(Customer.sort_name, Customer.id).limit(size).subquery()
    row = aliased(Customer, walk)
    found = db.session.scalars(
        select(row)
        .where(ClauseAdapter(walk).traverse(condition))
        .order_by(row.sort_name, row.id)
        .limit(wanted)
    )
    return [(customer.sort_name, customer) for customer in found]


def _window_first(
    book: Select[Any], condition: Any, after: tuple[str, int] | None, wanted: int
) -> Found:
    """One word over the whole book may match a few percent of it, spread over the
    name order, or a few hundred customers bunched in one place of it, and
    PostgreSQL's estimates cannot tell which. So: the next WINDOW customers in name
    order first (a page of a common word is there), then every match, sorted. In
    between, when the window held some matches but not a page, a longer walk is the
    cheaper bet down to WALK_DENSITY (walking ~wanted/density rows against sorting
    density x the book)."""
    walk = _after(book, Customer.sort_name, after)
    size = WINDOW
    while len(found := _window(walk, condition, size, wanted)) < wanted:
        density = len(found) / size
        if density < WALK_DENSITY or size >= WINDOW_MAX:
            return _sorted_after(book.where(condition), after, wanted)
        size = min(WINDOW_MAX, int(wanted / density * 1.5))
    return found


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

    identity = identity_value(*(candidate.get(name) for name in IDENTITY_FIELDS))
    if identity is not None and candidate.get("kind") != COMPANY:
        # The same name and date of birth: one indexed equality. Rows without an
        # identity index yet (models.identity_backfill) are found by name and their
        # dates of birth compared here.
        unindexed = and_(
            Customer.identity_index.is_(None),
            Customer.date_of_birth.is_not(None),
            func.lower(Customer.first_name) == candidate["first_name"].lower(),
            func.lower(Customer.last_name) == candidate["last_name"].lower(),
        )
        twins = db.session.scalars(
            base.where(or_(Customer.identity_index == identity, unindexed))
            .order_by(Customer.id)
            .limit(DUPLICATES_MAX)
        )
        for customer in twins:
            if (customer.identity_index or _identity_of(customer)) == identity:
                note(customer, "name_and_date_of_birth")

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
            # A similar name (a typo, a nickname) with the same date of birth: dates
            # of birth are encrypted, so compared here, among the few similar names.
            elif (
                customer.id not in found
                and candidate.get("date_of_birth")
                and customer.date_of_birth == candidate["date_of_birth"]
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


def _identity_of(customer: Customer) -> str | None:
    return identity_value(*(getattr(customer, name) for name in IDENTITY_FIELDS))


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
