"""Customers (buyers): people and companies in the brokerage's book.

Personal data is tagged (core.security.pii): names, contacts and the address are
`contact` data; the date of birth and the national id are `sensitive`, encrypted at
rest, the national id with a blind index for exact search. Erasure (core.gdpr)
keeps the row, with pseudonyms for the names and nothing else personal.

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
from core.security.pii import EncryptedString, blind_index, pii

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
    search_vector: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True)
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
DERIVED = frozenset({"sort_name", "search_vector", "national_id_index"})


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
gdpr.register(Customer, subject=customer_rows, erase=gdpr.PSEUDONYMISE, age=Customer.created_at)
gdpr.register(CustomerContact, subject=_contact_rows, erase=gdpr.SHRED)
