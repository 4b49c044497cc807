"""Customers (buyers): people and companies in the brokerage's book.

Personal data is tagged (core.security.pii): names, contacts and the address are
`contact` data; the date of birth and the national id are `sensitive`, encrypted at
rest, the national id with a blind index for exact search. Erasure (core.gdpr)
keeps the row, with pseudonyms for the names and nothing else personal.

`identity_index` is a blind index of a person's identity: the keyed hash (the
tenant's index key, as the national id's) of the normalised first name, last name
and date of birth. Duplicate checks find "same name, same date of birth" with one
indexed equality instead of decrypting the date of birth of every customer of the
same name. The ORM keeps it up to date when any of the three is assigned; a bulk
write sets it with `identity_value`; erasure clears it. Rows written before it
existed (or by a bulk write that left it out) have none: `identity_backfill` fills
them, and the duplicate checks decrypt those few meanwhile.

Search reads two generated columns: `sort_name` (the display name, lower-case; the
keyset sort key and the trigram index) and `search_vector` (names, email, phone
digits, registration number). Neither is tagged: PostgreSQL derives them from the
tagged columns, so erasing those erases them too, and they are never serialised or
audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import gdpr
from core.audit import AuditMixin
from core.db import Base
from core.gdpr import PersonRef
from core.security import crypto
from core.security.pii import EncryptedString, blind_index, normalise, pii

PERSON, COMPANY = "person", "company"
KINDS = (PERSON, COMPANY)
CHANNELS = ("email", "phone", "sms", "post")
KYC_STATUSES = ("not_started", "pending", "verified", "failed")
ACTIVE, INACTIVE, MERGED = "active", "inactive", "merged"
STATUSES = (ACTIVE, INACTIVE, MERGED)

NAME_MAX = 100
COMPANY_NAME_MAX = 200
EMAIL_MAX = 255
PHONE_MAX = 40
REGISTRATION_MAX = 50

# One expression for the generated columns and the migration (0007_customers), so the
# two cannot drift. Immutable functions only, as generated columns require.
SORT_NAME_SQL = (
    "lower(btrim(coalesce(company_name, "
    "coalesce(first_name, '') || ' ' || coalesce(last_name, ''))))"
)
# A person's surname, then first name, lower-case: how search finds "smit" (the
# Smiths) in surname order (core.customers.queries.search). Companies have ''.
# An expression index, not a generated column: adding it rewrites no table.
SURNAME_FIRST_SQL = "lower(btrim((coalesce(last_name, '') || ' ') || coalesce(first_name, '')))"
# Emails are split at '@' and '.' so "jane" finds jane.doe@example.com; phones are
# indexed as their digits, so "2079 46" and "+44 20 7946" both find +442079460958.
SEARCH_VECTOR_SQL = (
    "to_tsvector('simple'::regconfig, "
    "coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || "
    "coalesce(company_name, '') || ' ' || "
    "coalesce(translate(email, '@.+-_', '     '), '') || ' ' || "
    "coalesce(regexp_replace(phone, '[^0-9]', '', 'g'), '') || ' ' || "
    "coalesce(registration_number, ''))"
)


class Customer(AuditMixin, Base):
    """A buyer: a person (first and last name, date of birth) or a company (name,
    registration number). `status` is active, inactive, or merged (into
    `merged_into`); a soft-deleted customer has `is_active` false."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", "kind"),
        CheckConstraint(f"status IN {STATUSES!r}", "status"),
        CheckConstraint(f"kyc_status IN {KYC_STATUSES!r}", "kyc_status"),
        CheckConstraint(
            f"preferred_channel IS NULL OR preferred_channel IN {CHANNELS!r}", "channel"
        ),
        CheckConstraint("(status = 'merged') = (merged_into IS NOT NULL)", "merged_into"),
        CheckConstraint("merged_into IS DISTINCT FROM id", "not_merged_into_self"),
        # Keyset pages: the whole book, and one agent's book, by (sort_name, id).
        Index("ix_customers_sort_name_id", "sort_name", "id"),
        Index("ix_customers_agent_sort_name_id", "agent_id", "sort_name", "id"),
        # Search by surname first (see SURNAME_FIRST_SQL), in the whole book and in one
        # agent's, in order.
        Index("ix_customers_surname_first_id", text(SURNAME_FIRST_SQL), "id"),
        Index("ix_customers_agent_surname_first_id", "agent_id", text(SURNAME_FIRST_SQL), "id"),
        Index("ix_customers_search_vector", "search_vector", postgresql_using="gin"),
        Index(
            "ix_customers_sort_name_trgm",
            "sort_name",
            postgresql_using="gin",
            postgresql_ops={"sort_name": "public.gin_trgm_ops"},
        ),
        Index("ix_customers_lower_email", text("lower(email)")),
        # Likely duplicates by name (an import checks a chunk of names at once).
        Index("ix_customers_lower_names", text("lower(first_name)"), text("lower(last_name)")),
        # Same name and date of birth, one equality (see identity_value).
        Index("ix_customers_identity_index", "identity_index"),
        # The people whose identity index is still to compute (identity_backfill): the
        # duplicate checks look their names up here. Empty once every row has one.
        Index(
            "ix_customers_unindexed_names",
            text("lower(first_name)"),
            text("lower(last_name)"),
            postgresql_where=text("identity_index IS NULL AND date_of_birth IS NOT NULL"),
        ),
        Index("ix_customers_phone", "phone"),
        Index("ix_customers_registration_number", "registration_number"),
        Index("ix_customers_tags", "tags", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    first_name: Mapped[str | None] = mapped_column(
        String(NAME_MAX), info=pii("contact", kind="name", erase="pseudonym")
    )
    last_name: Mapped[str | None] = mapped_column(
        String(NAME_MAX), info=pii("contact", kind="name", erase="pseudonym")
    )
    # ISO YYYY-MM-DD: encrypted values are strings (docs/personal-data.md).
    date_of_birth: Mapped[str | None] = mapped_column(
        EncryptedString(), info=pii("sensitive", kind="date_of_birth")
    )
    # A sole trader's business name is often their own: treated as a name.
    company_name: Mapped[str | None] = mapped_column(
        String(COMPANY_NAME_MAX), info=pii("contact", kind="name", erase="pseudonym")
    )
    registration_number: Mapped[str | None] = mapped_column(String(REGISTRATION_MAX))
    national_id: Mapped[str | None] = mapped_column(
        EncryptedString(), info=pii("sensitive", kind="national_id")
    )
    national_id_index: Mapped[str | None] = blind_index("national_id")
    # identity_value(first_name, last_name, date_of_birth); see the module docstring.
    identity_index: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX), info=pii("contact", "email"))
    # Stored normalised, "+" and digits, so equal numbers compare equal.
    phone: Mapped[str | None] = mapped_column(String(PHONE_MAX), info=pii("contact", "phone"))
    preferred_channel: Mapped[str | None] = mapped_column(String(10))
    # {"line1", "line2", "city", "postcode", "region", "country"} (core.customers.rules).
    address: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True), info=pii("contact", "address")
    )
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # When marketing consent was last given or withdrawn.
    consent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    kyc_status: Mapped[str] = mapped_column(
        String(20), default="not_started", server_default="not_started"
    )
    # Free text about a person is personal data: erased with them.
    notes: Mapped[str | None] = mapped_column(Text, info=pii("contact"))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list, server_default="{}")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE, server_default=ACTIVE)
    merged_into: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), index=True
    )

    sort_name: Mapped[str] = mapped_column(Text, Computed(SORT_NAME_SQL, persisted=True))
    # Deferred: only SQL reads it; loading it with every customer (a page of search
    # results: 50) would carry its words over the wire for nothing.
    search_vector: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True), deferred=True
    )

    contacts: Mapped[list[CustomerContact]] = relationship(
        back_populates="customer",
        order_by="CustomerContact.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    @property
    def display_name(self) -> str:
        if self.kind == COMPANY:
            return self.company_name or ""
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class CustomerContact(AuditMixin, Base):
    """A further email or phone of a customer (the primary ones live on the customer)."""

    __tablename__ = "customer_contacts"
    __table_args__ = (CheckConstraint("(email IS NULL) <> (phone IS NULL)", "email_or_phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX), info=pii("contact", "email"))
    phone: Mapped[str | None] = mapped_column(String(PHONE_MAX), info=pii("contact", "phone"))

    customer: Mapped[Customer] = relationship(back_populates="contacts")


# Columns never serialised nor audited: derived from personal data (see the docstring).
DERIVED = frozenset({"sort_name", "search_vector", "national_id_index", "identity_index"})
IDENTITY_FIELDS = ("first_name", "last_name", "date_of_birth")
# Part of every identity hash: a value the national id's index could never hash to.
IDENTITY_CONTEXT = "bidx:customers.identity"


def identity_value(
    first_name: str | None, last_name: str | None, date_of_birth: str | None
) -> str | None:
    """The identity index of a person (current tenant), or None unless all three are
    given. Names compare as core.security.pii.normalise spells them (case, spacing
    and Unicode forms ignored), so "JAMES  smith" is James Smith; the date is ISO.

    Low-entropy parts, but keyed: without the tenant's index key nobody can test a
    guess. What it reveals to a reader of the table is what the duplicate warning
    shows anyway: that two rows have the same name and date of birth.
    """
    if not (first_name and last_name and date_of_birth):
        return None
    parts = (normalise(first_name, None), normalise(last_name, None), date_of_birth.strip())
    return crypto.keyed_hash(f"{IDENTITY_CONTEXT}:" + "\x1f".join(parts))


def _keep_identity(field: str) -> Any:
    def set_identity(target: Customer, value: Any, old: Any, initiator: Any) -> None:
        parts = [value if name == field else getattr(target, name) for name in IDENTITY_FIELDS]
        target.identity_index = identity_value(*parts)

    return set_identity


for _field in IDENTITY_FIELDS:
    event.listen(getattr(Customer, _field), "set", _keep_identity(_field))


def customer_rows(ref: PersonRef) -> Any:
    """GDPR: the customers a person reference names (by customer id or email)."""
    conditions = []
    if ref.get("customer_id") is not None:
        conditions.append(Customer.id == ref.get("customer_id"))
    if ref.email:
        conditions.append(func.lower(Customer.email) == ref.email.strip().lower())
    return or_(*conditions) if conditions else None


def _contact_rows(ref: PersonRef) -> Any:
    customer = customer_rows(ref)
    if customer is None:
        return None
    conditions = [CustomerContact.customer_id.in_(select(Customer.id).where(customer))]
    if ref.email:
        conditions.append(func.lower(CustomerContact.email) == ref.email.strip().lower())
    return or_(*conditions)


# Customers stay after erasure (policies and invoices will point at them), pseudonymised;
# their further contacts go.
gdpr.register(
    Customer,
    subject=customer_rows,
    erase=gdpr.PSEUDONYMISE,
    age=Customer.created_at,
    # Names get pseudonyms and the date of birth goes: nothing may still hash them.
    erase_also={"identity_index": None},
)
gdpr.register(CustomerContact, subject=_contact_rows, erase=gdpr.SHRED)
