"""Reading products, their versions and rate tables.

Products are the brokerage's catalogue, not anyone's book: every caller who may read
them sees them all, so there is no reach rule here. Permissions are checked by the
callers (screens, API) and by core.products.operations for writes.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from core.db import db
from core.products.models import Product, ProductVersion, RateTable
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


def in_force(line_code: str, on: date) -> tuple[Product, ProductVersion] | None:
    """The active product of `line_code` and its version in force `on`, in one query
    (a quote's hot path); None when either is missing (ask the others why)."""
    row = db.session.execute(
        select(Product, ProductVersion)
        .join(ProductVersion, ProductVersion.product_id == Product.id)
        .where(
            Product.line_code == line_code,
            Product.is_active.is_(True),
            ProductVersion.is_active.is_(True),
            ProductVersion.effective_from <= on,
        )
        .order_by(ProductVersion.effective_from.desc())
        .limit(1)
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


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
