"""Rules of the customers module: what a valid customer is, and whose book it is in.

`clean(payload)` turns an API or form payload into column values, or raises
`CustomerInvalid` naming every bad field. The same function serves creates
and updates (only the fields sent), so a screen,
the API and the bulk import (later) all accept and refuse the same things.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from sqlalchemy import ColumnElement

from core.agents import queries as agent_queries
from core.customers.models import (
    ACTIVE,
    CHANNELS,
    COMPANY,
    COMPANY_NAME_MAX,
    EMAIL_MAX,
    INACTIVE,
    KINDS,
    KYC_STATUSES,
    NAME_MAX,
    PERSON,
    REGISTRATION_MAX,
    Customer,
)
from core.security import scope
from core.security.pii import normalise

Errors = dict[str, list[str]]

REQUIRED = "This field is required."
OLDEST_BIRTH_YEAR = 1900
ADDRESS_FIELDS = ("line1", "line2", "city", "postcode", "region", "country")
ADDRESS_MAX = 200
TAG_MAX, TAGS_MAX = 50, 20
NOTES_MAX = 5000
LABEL_MAX = 40
CONTACTS_MAX = 10
# E.164 allows 15 digits; fewer than 6 is no phone number anywhere.
PHONE_DIGITS = (6, 15)
PHONE_CHARACTERS = re.compile(r"^\+?[0-9 ().\-/]+$")
# National and tax ids differ by country; a shape every one of them fits.
NATIONAL_ID = re.compile(r"^[0-9A-Z]{4,30}$")
# API `status`: merging is its own operation, never a field to set.
SETTABLE_STATUSES = (ACTIVE, INACTIVE)

FIELDS = (
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
    "kyc_status",
    "notes",
    "tags",
    "agent_id",
    "status",
    "contacts",
)


class CustomerInvalid(ValueError):
    """Input that breaks a rule; `errors` maps each field to its messages."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items())))
        self.errors = errors


# --- Field cleaners: value -> clean value, or ValueError(message) ----------------------


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("Must be a string.")
    if "\x00" in value:
        raise ValueError("Must not contain NUL characters.")
    text = " ".join(value.split())
    if len(text) > limit:
        raise ValueError(f"At most {limit} characters.")
    return text or None


def _choice(choices: tuple[str, ...]) -> Any:
    def clean(value: Any) -> str | None:
        if value is None:
            return None
        if value not in choices:
            raise ValueError(f"Must be one of: {', '.join(choices)}.")
        return str(value)

    return clean


def clean_date_of_birth(value: Any, today: date | None = None) -> str | None:
    """An ISO date (YYYY-MM-DD), in the past, after 1900; returned as ISO text."""
    text = _text(value, 10)
    if text is None:
        return None
    try:
        born = date.fromisoformat(text)
    except ValueError:
        raise ValueError("Must be a date, YYYY-MM-DD.") from None
    if len(text) != 10:
        raise ValueError("Must be a date, YYYY-MM-DD.")
    if born > (today or date.today()):
        raise ValueError("Must not be in the future.")
    if born.year < OLDEST_BIRTH_YEAR:
        raise ValueError(f"Must be after {OLDEST_BIRTH_YEAR}.")
    return born.isoformat()


# What email_validator checks of an address's domain depends on the domain alone, and
# a book's addresses share a few dozen domains: each is validated once per process.
EMAIL_DOMAINS_CACHED = 4096
# A plain address: one "@", a local part of the RFC 5322 dot-atom characters (ASCII,
# no quotes), a domain of ASCII letters, digits, dots and dashes. For these, what
# email_validator does to the local part is to accept it as it is.
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.\-]+\Z")


@lru_cache(maxsize=EMAIL_DOMAINS_CACHED)
def _email_domain(domain: str) -> tuple[str, str] | None:
    """The domain of an address as email_validator normalises it, in its normal and
    ASCII forms; None if it refuses it. Asked of a one-letter address at the domain."""
    try:
        valid = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return valid.domain, valid.ascii_domain


def _validated_email(text: str) -> str:
    """email_validator's normalised form of `text`, or EmailNotValidError: a plain
    address from the cached domain and the local part as it is (what the validator
    makes of it), anything else by the validator itself."""
    local, at, domain = text.partition("@")
    if at and DOT_ATOM_TEXT.match(local) and _PLAIN_DOMAIN.match(domain):
        known = _email_domain(domain)
        if known is None:
            raise EmailNotValidError("The part after the @-sign is not valid.")
        # The validator's length check (original, normalised and ASCII forms, in
        # UTF-8 bytes); a long one goes the whole way, to be refused as it says.
        longest = max(len(domain), *(len(part.encode()) for part in known))
        if len(local) + 1 + longest <= EMAIL_MAX_LENGTH:
            return f"{local}@{known[0]}"
    return validate_email(text, check_deliverability=False).normalized


def clean_email(value: Any) -> str | None:
    text = _text(value, EMAIL_MAX)
    if text is None:
        return None
    try:
        normalized = _validated_email(text)
    except EmailNotValidError:
        raise ValueError("Must be an email address.") from None
    # Domains are case-insensitive and local parts are in practice: one spelling, so
    # equality (dedupe, search, GDPR requests) needs no lower() at each use.
    return normalized.lower()


def clean_phone(value: Any) -> str | None:
    """Digits with an optional leading "+", as core.security.pii.normalise keeps them."""
    text = _text(value, 40)
    if text is None:
        return None
    if not PHONE_CHARACTERS.match(text):
        raise ValueError("Must be a phone number: digits, spaces, + - ( ) . /")
    phone = normalise(text, "phone")
    digits = len(phone.lstrip("+"))
    if not PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]:
        raise ValueError(f"Must have {PHONE_DIGITS[0]} to {PHONE_DIGITS[1]} digits.")
    return phone


def clean_national_id(value: Any) -> str | None:
    """Kept as typed (trimmed); its blind index normalises. 4-30 letters and digits,
    ignoring spaces, dashes, dots and slashes."""
    text = _text(value, 40)
    if text is None:
        return None
    if not NATIONAL_ID.match(normalise(text, "national_id")):
        raise ValueError("Must be 4 to 30 letters and digits (spaces, - . / allowed).")
    return text


def _address(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"Must be an object with: {', '.join(ADDRESS_FIELDS)}.")
    unknown = sorted(set(value) - set(ADDRESS_FIELDS))
    if unknown:
        raise ValueError(f"Unknown address fields: {', '.join(map(str, unknown))}.")
    cleaned = {}
    for name in ADDRESS_FIELDS:
        try:
            text = _text(value.get(name), ADDRESS_MAX)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if text is not None:
            cleaned[name] = text
    return cleaned or None


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ValueError("Must be a list of strings.")
    tags = []
    for tag in value:
        text = _text(tag, TAG_MAX)
        if text is not None and text not in tags:
            tags.append(text)
    if len(tags) > TAGS_MAX:
        raise ValueError(f"At most {TAGS_MAX} tags.")
    return tags


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Must be true or false.")
    return value


def _agent_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise ValueError("Must be an agent's id.")
    return value


def _contacts(value: Any) -> list[dict[str, str | None]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("Must be a list of objects with email or phone, and a label.")
    if len(value) > CONTACTS_MAX:
        raise ValueError(f"At most {CONTACTS_MAX} contacts.")
    contacts = []
    for number, item in enumerate(value, 1):
        unknown = sorted(set(item) - {"label", "email", "phone"})
        try:
            if unknown:
                raise ValueError(f"unknown fields {', '.join(map(str, unknown))}.")
            email, phone = clean_email(item.get("email")), clean_phone(item.get("phone"))
            if (email is None) == (phone is None):
                raise ValueError("give either an email or a phone.")
            contacts.append(
                {"label": _text(item.get("label"), LABEL_MAX), "email": email, "phone": phone}
            )
        except ValueError as exc:
            raise ValueError(f"Contact {number}: {exc}") from None
    return contacts


CLEANERS: dict[str, Any] = {
    "kind": _choice(KINDS),
    "first_name": lambda v: _text(v, NAME_MAX),
    "last_name": lambda v: _text(v, NAME_MAX),
    "date_of_birth": clean_date_of_birth,
    "company_name": lambda v: _text(v, COMPANY_NAME_MAX),
    "registration_number": lambda v: _text(v, REGISTRATION_MAX),
    "national_id": clean_national_id,
    "email": clean_email,
    "phone": clean_phone,
    "preferred_channel": _choice(CHANNELS),
    "address": _address,
    "marketing_consent": _boolean,
    "kyc_status": _choice(KYC_STATUSES),
    "notes": lambda v: _text(v, NOTES_MAX),
    "tags": _tags,
    "agent_id": _agent_id,
    "status": _choice(SETTABLE_STATUSES),
    "contacts": _contacts,
}
NOT_NULL = frozenset({"kind", "marketing_consent", "kyc_status", "status"})


def clean(payload: Any, *, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload's fields, cleaned; CustomerInvalid names every bad one, including
    what the whole record would lack (`whole_record_errors`).

    Unknown fields are refused (a typo must not be silently dropped). `current`: an
    update of the record with these values, where absent fields stay as they are and
    null clears a field; None for a create.
    """
    if not isinstance(payload, dict):
        raise CustomerInvalid({"body": ["Send a JSON object."]})
    errors: Errors = {}
    values: dict[str, Any] = {}
    for name in sorted(set(payload) - set(CLEANERS)):
        errors[str(name)] = ["Unknown field."]
    for name, cleaner in CLEANERS.items():
        if name not in payload:
            continue
        raw = payload[name]
        if raw is None and name in NOT_NULL:
            errors[name] = ["Must not be null."]
            continue
        try:
            values[name] = cleaner(raw)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if current is None and "kind" not in payload:
        errors["kind"] = [REQUIRED]
    whole = whole_record_errors((current or {}) | values)
    errors |= {name: messages for name, messages in whole.items() if name not in errors}
    if errors:
        raise CustomerInvalid(errors)
    return values


def whole_record_errors(record: dict[str, Any]) -> Errors:
    """What a complete customer (after a create or an update) must have: a person their
    first and last names, a company its name."""
    errors: Errors = {}
    if record.get("kind") not in KINDS:
        return errors  # the kind's own error says it all
    required = ("first_name", "last_name") if record.get("kind") == PERSON else ("company_name",)
    for name in required:
        if not record.get(name):
            errors[name] = [REQUIRED]
    if record.get("kind") == COMPANY and record.get("date_of_birth"):
        errors["date_of_birth"] = ["A company has no date of birth."]
    return errors


# --- Reach: an agent's book, a manager's subtree -------------------------------------


def agent_ids_of(user: Any) -> Any:
    """SQL: the active agent profile(s) of `user` (a subquery, never a round trip)."""
    return agent_queries.own_agent_ids(user.id)


@scope.reach(Customer)
def book(user: Any) -> ColumnElement[bool]:
    """Customers `user` may see (core.agents.queries.customers_in_reach): every one for
    admins and when the tenant widened agents' books; a manager's subtree (the
    customers of the agents of the units they manage, their own, and unassigned ones);
    an agent's own book. API clients reach the whole brokerage only by grant."""
    return agent_queries.customers_in_reach(Customer.agent_id, user)
