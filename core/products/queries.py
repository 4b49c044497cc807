"""Reading products, their versions and rate tables.

Products are the brokerage's catalogue, not anyone's book: every caller who may read
them sees them all, so there is no reach rule here. Permissions are checked by the
callers (screens, API) and by core.products.operations for writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType

from sqlalchemy import select

from core import generations
from core.db import db
from core.products.models import Product, ProductVersion, RateTable, catalogue_generation
from core.security import scope

INT_MAX = 2**31 - 1


def products(*, active_only: bool = False) -> list[Product]:
    """Every product the tenant has (or only those it sells now), by name."""
    statement = select(Product).order_by(Product.name, Product.id)
    if active_only:
        statement = statement.where(Product.is_active.is_(True))
    return list(db.session.scalars(statement))


def product(product_id: int) -> Product:
    """The product with this id, enabled or not; OutOfReach (404) when there is none."""
    found = db.session.get(Product, product_id) if 0 < product_id <= INT_MAX else None
    if found is None:
        raise scope.OutOfReach()
    return found


def by_line(line_code: str) -> Product | None:
    """The tenant's product of `line_code`, enabled or not."""
    return db.session.scalar(select(Product).where(Product.line_code == line_code))


def versions(product_id: int) -> list[ProductVersion]:
    """The product's active versions, oldest first."""
    return list(
        db.session.scalars(
            select(ProductVersion)
            .where(ProductVersion.product_id == product_id, ProductVersion.is_active.is_(True))
            .order_by(ProductVersion.effective_from)
        )
    )


def version_in_force(product_id: int, on: date) -> ProductVersion | None:
    """The version quotes starting `on` rate on: the latest effective on or before it."""
    return db.session.scalar(
        select(ProductVersion)
        .where(
            ProductVersion.product_id == product_id,
            ProductVersion.is_active.is_(True),
            ProductVersion.effective_from <= on,
        )
        .order_by(ProductVersion.effective_from.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class OfferedVersion:
    """A product version as the quote path needs it (no ORM object: it is shared)."""

    id: int
    product_id: int
    effective_from: date
    rate_table_id: int | None
    rate_table_sha256: str | None


@dataclass(frozen=True)
class Offer:
    """A product on sale and its active versions, newest first."""

    id: int
    line_code: str
    name: str
    versions: tuple[OfferedVersion, ...]

    def in_force(self, on: date) -> OfferedVersion | None:
        """The version quotes starting `on` rate on: the latest effective on or before it."""
        return next((v for v in self.versions if v.effective_from <= on), None)


def _load_offers() -> Mapping[str, Offer]:
    rows = db.session.execute(
        select(
            Product.id,
            Product.line_code,
            Product.name,
            ProductVersion.id,
            ProductVersion.effective_from,
            ProductVersion.rate_table_id,
            RateTable.sha256,
        )
        .join(ProductVersion, ProductVersion.product_id == Product.id)
        .outerjoin(RateTable, RateTable.id == ProductVersion.rate_table_id)
        .where(Product.is_active.is_(True), ProductVersion.is_active.is_(True))
        .order_by(Product.id, ProductVersion.effective_from.desc())
    ).all()
    offers: dict[str, Offer] = {}
    for product_id, line_code, name, *version in rows:
        offer = offers.get(line_code) or Offer(product_id, line_code, name, ())
        offered = OfferedVersion(version[0], product_id, *version[1:])
        offers[line_code] = replace(offer, versions=(*offer.versions, offered))
    return MappingProxyType(offers)


def line_codes() -> Mapping[int, str]:
    """Product id -> line code, of every product the tenant has (remembered as offers
    are: a policy's answer names its product's line)."""

    def load() -> Mapping[int, str]:
        rows = db.session.execute(select(Product.id, Product.line_code))
        return MappingProxyType({row.id: row.line_code for row in rows})

    return generations.remembered("line codes").get(catalogue_generation(), load)


def offer(line_code: str) -> Offer | None:
    """The tenant's product of `line_code` if it is on sale with at least one version.

    Every quote asks, and products change a few times a year: each process remembers
    the tenant's offers until a product, version or rate table is written
    (core.generations), instead of reading them on every quote.
    """
    offers = generations.remembered("offers").get(catalogue_generation(), _load_offers)
    return offers.get(line_code)


def version(version_id: int) -> ProductVersion | None:
    return db.session.get(ProductVersion, version_id) if 0 < version_id <= INT_MAX else None


def rate_tables(line_code: str | None = None) -> list[RateTable]:
    """Uploaded rate tables, newest first, of one line or all."""
    statement = select(RateTable).order_by(RateTable.created_at.desc(), RateTable.id.desc())
    if line_code is not None:
        statement = statement.where(RateTable.line_code == line_code)
    return list(db.session.scalars(statement))


def rate_table(rate_table_id: int) -> RateTable | None:
    return db.session.get(RateTable, rate_table_id) if 0 < rate_table_id <= INT_MAX else None


def rate_table_by_version(line_code: str, version: str) -> RateTable | None:
    return db.session.scalar(
        select(RateTable).where(RateTable.line_code == line_code, RateTable.version == version)
    )
