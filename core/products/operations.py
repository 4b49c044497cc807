"""Writing products, product versions and rate tables. The only code that writes them.

- `enable_product` starts selling a line a plugin of the tenant declares: a `Product`
  with grace and revival settings seeded from the line's `LapseRules`, and a first
  version on the line's default table effective from `DEFAULT_EFFECTIVE_FROM`.
- `upload_rate_table` has the line's plugin read and check a file and stores what it
  read, exactly (core.products.jsonvalues); a table is never replaced, a new tariff is
  a new version.
- `add_product_version` puts a table (or the default, with none) in force from a date.

Permissions (PRODUCT.md): the catalogue is business (`products:create/update`, held by
managers and admins); rate tables are settings (`settings:update`, admins only).
Every operation validates before it writes, is one transaction, and is audited.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from core import audit, plugins
from core.db import committed, db
from core.hookspecs import RateTable as TableSpec
from core.hookspecs import Refusal
from core.products import jsonvalues, lines, queries
from core.products.models import NAME_MAX, VERSION_MAX, Product, ProductVersion, RateTable
from core.products.rules import (
    NOTES_MAX,
    Errors,
    ProductInvalid,
    clean_date,
    clean_grace_days,
    clean_revival_years,
)
from core.security.authz import authorize

T = TypeVar("T")

# The first version of a product rates on the line's default table, which has no date
# of its own (it is the tariff until the tenant loads one). Dating that version far
# back lets every start date a quote may have (a year either side of today,
# core.policies.quotes) and every older policy an endorsement or a replay touches be
# rated; a tenant's own tables then take over from their own effective dates.
DEFAULT_EFFECTIVE_FROM = date(2000, 1, 1)
UPLOAD_MAX_BYTES = 5 * 1024 * 1024


def _snapshot(product: Product) -> dict[str, Any]:
    return audit.snapshot(product)


def _name(value: Any, default: str) -> str:
    if value is None:
        return default[:NAME_MAX]
    if not isinstance(value, str) or not value.strip():
        raise ProductInvalid({"name": ["Must be a name."]})
    text = " ".join(value.split())
    if len(text) > NAME_MAX:
        raise ProductInvalid({"name": [f"At most {NAME_MAX} characters."]})
    return text


# --- Products -------------------------------------------------------------------------


def enable_product(
    line_code: str,
    *,
    name: str | None = None,
    effective_from: date | None = None,
    user: Any = None,
) -> Product:
    """Sell `line_code`. A new product gets grace and revival from the line's rules and
    a first version on the default table from `effective_from` (default
    DEFAULT_EFFECTIVE_FROM); a disabled one is enabled again as it was."""
    declared = lines.get(line_code) if isinstance(line_code, str) else None
    if declared is None:
        raise ProductInvalid(
            {"line_code": ["No plugin enabled for this brokerage declares this product line."]}
        )
    existing = queries.by_line(line_code)
    authorize("products:update" if existing is not None else "products:create", user)
    if existing is not None:
        if existing.is_active:
            return existing

        def reenable() -> Product:
            assert existing is not None
            before = _snapshot(existing)
            existing.is_active = True
            if name is not None:
                existing.name = _name(name, existing.name)
            db.session.flush()
            audit.record(
                "products.enable",
                entity="products",
                entity_id=existing.id,
                before=before,
                after=_snapshot(existing),
            )
            return existing

        return committed(reenable)

    line = declared.line
    product_name = _name(name, line.name)
    start = clean_date(effective_from) if effective_from is not None else DEFAULT_EFFECTIVE_FROM

    def create() -> Product:
        product = Product(
            line_code=line.code,
            name=product_name,
            grace_days=dict(line.lapse.grace_days),
            revival_years=line.lapse.revival_years,
        )
        db.session.add(product)
        db.session.flush()
        version = ProductVersion(
            product_id=product.id,
            effective_from=start,
            rate_table_id=None,
            notes=f"Default table {line.default_rate_table.version} of {declared.plugin}.",
        )
        db.session.add(version)
        db.session.flush()
        audit.record(
            "products.enable",
            entity="products",
            entity_id=product.id,
            after=_snapshot(product),
            details={"plugin": declared.plugin, "first_version_from": start},
        )
        return product

    return committed(create)


def disable_product(product_id: int, *, user: Any = None) -> Product:
    """No new quotes of this product; its quotes and policies stay as they are."""
    authorize("products:update", user)
    product = queries.product(product_id)
    if not product.is_active:
        return product

    def work() -> Product:
        before = _snapshot(product)
        product.is_active = False
        db.session.flush()
        audit.record(
            "products.disable",
            entity="products",
            entity_id=product.id,
            before=before,
            after=_snapshot(product),
        )
        return product

    return committed(work)


def update_product(
    product_id: int,
    *,
    name: Any = None,
    grace_days: Any = None,
    revival_years: Any = ...,
    user: Any = None,
) -> Product:
    """Change the name, the grace days by payment frequency, or the revival years
    (None: a lapsed policy cannot be revived). Arguments left out stay as they are."""
    authorize("products:update", user)
    product = queries.product(product_id)
    errors: Errors = {}
    values: dict[str, Any] = {}
    if name is not None:
        try:
            values["name"] = _name(name, product.name)
        except ProductInvalid as exc:
            errors |= exc.errors
    if grace_days is not None:
        try:
            values["grace_days"] = clean_grace_days(grace_days)
        except ValueError as exc:
            errors["grace_days"] = [str(exc)]
    if revival_years is not ...:
        try:
            values["revival_years"] = clean_revival_years(revival_years)
        except ValueError as exc:
            errors["revival_years"] = [str(exc)]
    if errors:
        raise ProductInvalid(errors)

    def work() -> Product:
        before = _snapshot(product)
        for key, value in values.items():
            setattr(product, key, value)
        db.session.flush()
        after = _snapshot(product)
        if before != after:
            audit.record(
                "products.update",
                entity="products",
                entity_id=product.id,
                before=before,
                after=after,
            )
        return product

    return committed(work)


# --- Rate tables ------------------------------------------------------------------------


def _parsed(line_code: str, filename: str, content: bytes) -> TableSpec:
    try:
        table = plugins.call(
            "powerbuyer_parse_rate_table",
            product_line=line_code,
            filename=filename,
            content=content,
        )
    except Refusal as refusal:
        errors = {name: [message] for name, message in refusal.errors.items()}
        raise ProductInvalid(errors or {"file": [refusal.message]}) from None
    if not isinstance(table, TableSpec):
        raise ProductInvalid({"file": ["This product line does not accept rate table files."]})
    if table.product_line != line_code:
        raise ProductInvalid({"file": [f"This is a rate table of {table.product_line}."]})
    if not isinstance(table.version, str) or not 0 < len(table.version) <= VERSION_MAX:
        raise ProductInvalid(
            {"version": [f"The table needs a version of 1 to {VERSION_MAX} characters."]}
        )
    return table


def upload_rate_table(
    line_code: str, filename: str, content: bytes, *, user: Any = None
) -> RateTable:
    """Store a rate table for `line_code` as its plugin reads it from the file. Refused,
    with nothing written, when the plugin refuses an entry or the version exists."""
    authorize("settings:update", user)
    if lines.get(line_code) is None:
        raise ProductInvalid(
            {"line_code": ["No plugin enabled for this brokerage declares this product line."]}
        )
    filename = (filename or "").strip()[:255]
    if not filename:
        raise ProductInvalid({"file": ["Choose a file."]})
    if not content:
        raise ProductInvalid({"file": ["The file is empty."]})
    if len(content) > UPLOAD_MAX_BYTES:
        raise ProductInvalid({"file": [f"At most {UPLOAD_MAX_BYTES // (1024 * 1024)} MB."]})
    table = _parsed(line_code, filename, content)
    try:
        data = jsonvalues.encode(table.data)
    except (TypeError, ValueError) as exc:
        raise ProductInvalid({"file": [f"The table cannot be stored exactly: {exc}."]}) from None
    taken = (
        f"Version {table.version} of this line is already loaded. A rate table is never "
        "replaced: give the new one another version."
    )
    if queries.rate_table_by_version(line_code, table.version) is not None:
        raise ProductInvalid({"version": [taken]})
    default = lines.get(line_code)
    if default is not None and table.version == default.line.default_rate_table.version:
        # A trace naming this version must keep meaning the plugin's own table.
        raise ProductInvalid({"version": [f"{table.version} is the default table's version."]})

    def work() -> RateTable:
        row = RateTable(
            line_code=line_code,
            version=table.version,
            currency=table.currency,
            data=data,
            source_filename=filename,
            sha256=hashlib.sha256(content).hexdigest(),
        )
        db.session.add(row)
        db.session.flush()
        audit.record(
            "rate_tables.upload",
            entity="rate_tables",
            entity_id=row.id,
            after=audit.snapshot(row, exclude=("data",)),
            details={"line_code": line_code, "version": table.version, "bytes": len(content)},
        )
        return row

    try:
        return committed(work)
    except IntegrityError:  # the same version uploaded at the same moment
        raise ProductInvalid({"version": [taken]}) from None


# --- Versions -------------------------------------------------------------------------


def add_product_version(
    product_id: int,
    effective_from: Any,
    rate_table_id: int | None,
    notes: str = "",
    *,
    user: Any = None,
) -> ProductVersion:
    """From `effective_from` on, quotes of the product rate on `rate_table_id` (None:
    the line's default table). One version per date; earlier quotes keep theirs."""
    authorize("products:update", user)
    product = queries.product(product_id)
    errors: Errors = {}
    start = None
    try:
        start = clean_date(effective_from)
    except ValueError as exc:
        errors["effective_from"] = [str(exc)]
    if start is not None and any(v.effective_from == start for v in queries.versions(product.id)):
        errors["effective_from"] = [f"A version of {product.name} already starts on {start}."]
    if rate_table_id is not None:
        table = queries.rate_table(rate_table_id) if isinstance(rate_table_id, int) else None
        if table is None or not table.is_active or table.line_code != product.line_code:
            errors["rate_table_id"] = [f"No rate table of {product.name} has this id."]
    if not isinstance(notes, str) or len(notes) > NOTES_MAX:
        errors["notes"] = [f"At most {NOTES_MAX} characters of text."]
    if errors:
        raise ProductInvalid(errors)

    def work() -> ProductVersion:
        version = ProductVersion(
            product_id=product.id,
            effective_from=start,
            rate_table_id=rate_table_id,
            notes=notes.strip(),
        )
        db.session.add(version)
        db.session.flush()
        audit.record(
            "products.add_version",
            entity="product_versions",
            entity_id=version.id,
            after=audit.snapshot(version),
            details={"product_id": product.id},
        )
        return version

    try:
        return committed(work)
    except IntegrityError:
        raise ProductInvalid(
            {"effective_from": [f"A version of {product.name} already starts on {start}."]}
        ) from None
