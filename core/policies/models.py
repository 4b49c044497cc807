"""Quotes, policies, their versions and renewal offers.

The life of a policy (PRODUCT.md): `quote -> bound -> in_force -> expired |
cancelled`, and once billing exists `in_force -> in_grace -> lapsed -> in_force`
(revived). A `Quote` is the first state: a priced risk for a customer that anyone
may re-rate from its trace. Binding it creates the `Policy` (state `bound`, no
number yet); issuing gives it a number and puts it in force.

A policy's terms live in `PolicyVersion` rows: version 1 is the business as issued,
each endorsement adds a version re-rated from its effective date with the pro-rata
premium difference for the rest of the term, and a cancellation adds a last version
with the return premium. Versions are never edited, so every earlier version stays
readable. Renewals are `RenewalOffer`s; accepting one creates the next term as a new
policy (`renewal_of_id`) with its own number.

Money columns are NUMERIC(14, 2) with the currency beside them; premiums are annual.
Traces are the plugin's rating steps as JSON with Decimals as strings.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.audit import AuditMixin
from core.db import Base
from core.products.models import LINE_CODE_MAX, VERSION_MAX

MONEY = Numeric(14, 2)

# Quote status.
OPEN, BOUND = "open", "bound"
QUOTE_STATUSES = (OPEN, BOUND)

# Policy states (PRODUCT.md).
STATE_BOUND, IN_FORCE, IN_GRACE, LAPSED, EXPIRED, CANCELLED = (
    "bound",
    "in_force",
    "in_grace",
    "lapsed",
    "expired",
    "cancelled",
)
POLICY_STATES = (STATE_BOUND, IN_FORCE, IN_GRACE, LAPSED, EXPIRED, CANCELLED)

FREQUENCIES = ("annual", "half_yearly", "quarterly", "monthly")

# Policy version kinds.
NEW_BUSINESS, ENDORSEMENT, CANCELLATION = "new_business", "endorsement", "cancellation"
VERSION_KINDS = (NEW_BUSINESS, ENDORSEMENT, CANCELLATION)

# Renewal offer status.
OFFERED, ACCEPTED, DECLINED, WITHDRAWN = "offered", "accepted", "declined", "withdrawn"
OFFER_STATUSES = (OFFERED, ACCEPTED, DECLINED, WITHDRAWN)


class Quote(AuditMixin, Base):
    """A risk of a customer priced on the product version in force on `start_date`."""

    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint(f"status IN {QUOTE_STATUSES!r}", "status"),
        CheckConstraint("premium >= 0", "premium_not_negative"),
        Index("ix_quotes_agent_id_id", "agent_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), index=True
    )
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="RESTRICT"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    product_version_id: Mapped[int] = mapped_column(
        ForeignKey("product_versions.id", ondelete="RESTRICT")
    )
    line_code: Mapped[str] = mapped_column(String(LINE_CODE_MAX))
    rate_table_version: Mapped[str] = mapped_column(String(VERSION_MAX))
    start_date: Mapped[date] = mapped_column(Date)
    risk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    premium: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), default=OPEN, server_default=OPEN)


class Policy(AuditMixin, Base):
    """A bound or issued policy; its terms are in `versions`, the latest current."""

    __tablename__ = "policies"
    # A policy changes state by UPDATE (issue, endorse, grace, lapse, cancel) and its
    # answer and audit snapshot then read `updated_at`, which the database sets: fetch
    # it with the UPDATE (RETURNING) instead of by a SELECT of its own afterwards.
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        UniqueConstraint("number"),
        UniqueConstraint("quote_id"),
        UniqueConstraint("renewal_of_id"),
        CheckConstraint(f"state IN {POLICY_STATES!r}", "state"),
        CheckConstraint(f"payment_frequency IN {FREQUENCIES!r}", "payment_frequency"),
        CheckConstraint("end_date > start_date", "term"),
        CheckConstraint("state = 'bound' OR number IS NOT NULL", "issued_has_number"),
        Index("ix_policies_agent_id_id", "agent_id", "id"),
        Index("ix_policies_end_date_state", "end_date", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(60))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), index=True
    )
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="RESTRICT"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="RESTRICT"))
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id", ondelete="RESTRICT"))
    renewal_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("policies.id", ondelete="RESTRICT")
    )
    state: Mapped[str] = mapped_column(String(10))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    payment_frequency: Mapped[str] = mapped_column(
        String(12), default="annual", server_default="annual"
    )
    # The current version's annual premium, kept here for lists and reports.
    premium: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    # Life declarations made at binding (health, occupation...), as answered.
    declarations: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    issued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    cancel_reason: Mapped[str | None] = mapped_column(Text)

    versions: Mapped[list[PolicyVersion]] = relationship(
        back_populates="policy", order_by="PolicyVersion.version"
    )


class PolicyVersion(AuditMixin, Base):
    """One version of a policy's terms, never changed once written.

    `premium` is the annual premium of these terms; `adjustment` the money this
    version moves for the rest of the term (the first premium for new business, the
    pro-rata difference for an endorsement, minus the return premium for a
    cancellation); billing turns it into items.
    """

    __tablename__ = "policy_versions"
    __table_args__ = (
        UniqueConstraint("policy_id", "version"),
        CheckConstraint(f"kind IN {VERSION_KINDS!r}", "kind"),
        CheckConstraint("version >= 1", "version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(15))
    effective_from: Mapped[date] = mapped_column(Date)
    risk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    premium: Mapped[Decimal] = mapped_column(MONEY)
    adjustment: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    product_version_id: Mapped[int] = mapped_column(
        ForeignKey("product_versions.id", ondelete="RESTRICT")
    )
    rate_table_version: Mapped[str] = mapped_column(String(VERSION_MAX))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    policy: Mapped[Policy] = relationship(back_populates="versions")


class RenewalOffer(AuditMixin, Base):
    """The next term of a policy, re-rated on the rate table current at its start, with
    the change from the expiring term explained factor by factor."""

    __tablename__ = "renewal_offers"
    __table_args__ = (
        UniqueConstraint("policy_id", "start_date"),
        CheckConstraint(f"status IN {OFFER_STATUSES!r}", "status"),
        Index("ix_renewal_offers_status_start_date", "status", "start_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id", ondelete="RESTRICT"))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    risk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    premium: Mapped[Decimal] = mapped_column(MONEY)
    previous_premium: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    trace: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # [{"step", "label", "from", "to", "effect"}], effect a decimal string.
    explanation: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    product_version_id: Mapped[int] = mapped_column(
        ForeignKey("product_versions.id", ondelete="RESTRICT")
    )
    rate_table_version: Mapped[str] = mapped_column(String(VERSION_MAX))
    status: Mapped[str] = mapped_column(String(10), default=OFFERED, server_default=OFFERED)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String)
    renewed_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("policies.id", ondelete="RESTRICT")
    )
