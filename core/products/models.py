"""Products a brokerage sells, their dated versions, and the rate tables they rate on.

A product line is code in a plugin (its risk fields, its rating); a `Product` is a
tenant's decision to sell that line, with its own grace and revival settings (seeded
from the line's declared `LapseRules`). A `ProductVersion` says from which date which
rate table applies; a quote uses the version in force on its start date. A
`RateTable` is a tenant's upload, checked by the line's plugin and never changed
afterwards: a new tariff is a new row, so every stored trace names a table that still
says what it said when the quote was rated. A product version without a rate table
rates on the line's default table, which lives in the plugin.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import generations
from core.audit import AuditMixin
from core.db import Base
from core.tenancy import require_tenant

LINE_CODE_MAX = 60
NAME_MAX = 120
VERSION_MAX = 80


class Product(AuditMixin, Base):
    """A product line the brokerage sells. `is_active` false: no new quotes."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("line_code"),
        CheckConstraint("revival_years IS NULL OR revival_years >= 0", "revival_years"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_code: Mapped[str] = mapped_column(String(LINE_CODE_MAX))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    # Days of grace by payment frequency: {"annual": 30, ..., "monthly": 15}.
    grace_days: Mapped[dict[str, int]] = mapped_column(JSONB)
    # None: a lapsed policy cannot be revived (motor is re-quoted).
    revival_years: Mapped[int | None] = mapped_column(Integer)

    versions: Mapped[list[ProductVersion]] = relationship(
        back_populates="product", order_by="ProductVersion.effective_from"
    )


class RateTable(AuditMixin, Base):
    """A rate table a tenant uploaded for a line, as the line's plugin read it.

    `data` is the plugin's shape with every Decimal stored as a string (JSON has no
    decimal type; a float would lose cents). Immutable once stored.
    """

    __tablename__ = "rate_tables"
    __table_args__ = (UniqueConstraint("line_code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line_code: Mapped[str] = mapped_column(String(LINE_CODE_MAX))
    version: Mapped[str] = mapped_column(String(VERSION_MAX))
    currency: Mapped[str | None] = mapped_column(String(3))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source_filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))


class ProductVersion(AuditMixin, Base):
    """From `effective_from` on, quotes of the product rate on `rate_table` (or on the
    line's default table when it is None)."""

    __tablename__ = "product_versions"
    __table_args__ = (UniqueConstraint("product_id", "effective_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), index=True
    )
    effective_from: Mapped[date] = mapped_column(Date)
    rate_table_id: Mapped[int | None] = mapped_column(
        ForeignKey("rate_tables.id", ondelete="RESTRICT"), index=True
    )
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")

    product: Mapped[Product] = relationship(back_populates="versions")
    rate_table: Mapped[RateTable | None] = relationship(lazy="joined")


def catalogue_generation() -> str:
    """The generation (core.generations) of the current tenant's products, versions and
    rate tables, which processes remember for quoting (core.products.queries.offer)."""
    return f"products:{require_tenant().id}"


# Every ORM write of one of them bumps it, whichever module makes it.
generations.track((Product, ProductVersion, RateTable), catalogue_generation)
