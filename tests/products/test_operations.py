"""Products, versions and rate tables: enabling a line, uploads checked by the plugin
and stored exactly, versions, settings; permissions, audit, nothing half-written."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.db import db
from core.products import jsonvalues, operations, queries, rating
from core.products.models import Product, RateTable
from core.products.rules import ProductInvalid
from core.security.authz import Denied
from core.tenancy import Tenant
from plugins.premium_motor.plugin import DEFAULT_TARIFF
from tests.conftest import rolled_back_session
from tests.products.fixtures import LIFE, MOTOR, REFERENCE_MOTOR, Staff, as_user
from tests.products.motor_tables import motor_csv


def _count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _actions(after: int) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.id > after).order_by(AuditEntry.id)
        )
    )


def _last_entry() -> int:
    return db.session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))


def test_enabling_a_line_seeds_its_settings_and_a_first_version(
    app: Flask, quoting: Tenant, q_manager: Staff, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        motor = queries.product(products_on[MOTOR])
        assert (motor.revival_years, motor.grace_days["monthly"]) == (None, 15)
        life = queries.product(products_on[LIFE])
        assert (life.revival_years, life.grace_days["annual"]) == (5, 30)
        [first] = queries.versions(life.id)
        assert (first.effective_from, first.rate_table_id) == (
            operations.DEFAULT_EFFECTIVE_FROM,
            None,
        )
        # Enabling again is a no-op; disabling and enabling again keeps the product.
        user = as_user(q_manager)
        mark = _last_entry()
        assert operations.enable_product(LIFE, user=user).id == life.id
        operations.disable_product(life.id, user=user)
        assert not queries.product(life.id).is_active
        again = operations.enable_product(LIFE, name="Term life plus", user=user)
        assert (again.id, again.is_active, again.name) == (life.id, True, "Term life plus")
        assert _actions(mark) == ["products.disable", "products.enable"]


def test_a_new_product_is_audited_with_its_first_version(
    app: Flask, beta: Tenant, quoting: Tenant, q_manager: Staff
) -> None:
    with rolled_back_session(app, quoting):
        # Make way for a new motor product: the session's one goes by another code here.
        db.session.execute(
            Product.__table__.update().where(Product.line_code == MOTOR).values(line_code="old")
        )
        mark = _last_entry()
        product = operations.enable_product(
            MOTOR, effective_from=date(2024, 7, 1), user=as_user(q_manager)
        )
        [version] = queries.versions(product.id)
        assert version.effective_from == date(2024, 7, 1)
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.id > mark)).one()
        assert (entry.action, entry.entity, entry.entity_id) == (
            "products.enable",
            "products",
            str(product.id),
        )
        assert entry.details["first_version_from"] == "2024-07-01"


def test_only_lines_of_the_tenants_plugins_can_be_enabled(
    app: Flask, quoting: Tenant, beta: Tenant, q_agent: Staff, q_manager: Staff
) -> None:
    with rolled_back_session(app, quoting):
        with pytest.raises(ProductInvalid) as unknown:
            operations.enable_product("travel", user=as_user(q_manager))
        assert list(unknown.value.errors) == ["line_code"]
        with pytest.raises(Denied):  # agents quote; they do not run the catalogue
            operations.enable_product(MOTOR, user=as_user(q_agent))
    # Beta did not enable premium_motor: the line is not there for it.
    with rolled_back_session(app, beta):
        with pytest.raises(ProductInvalid) as elsewhere:
            operations.enable_product(MOTOR)
        assert list(elsewhere.value.errors) == ["line_code"]
        assert _count(Product) == 0


def test_an_uploaded_table_is_stored_exactly_and_audited(
    app: Flask, quoting: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    content = motor_csv("3.9999")
    with rolled_back_session(app, quoting):
        mark = _last_entry()
        row = operations.upload_rate_table(MOTOR, "tariff-2026.csv", content, user=as_user(q_admin))
        assert row.version.startswith("sha256-")
        assert (row.source_filename, row.sha256, row.currency) == (
            "tariff-2026.csv",
            hashlib.sha256(content).hexdigest(),
            "INR",
        )
        # Stored tagged, read back as the exact Decimals the plugin parsed.
        assert row.data["own_damage_rate_percent"]["A"][0]["rates"][1] == {"$decimal": "3.9999"}
        table = rating.stored_table(row)
        assert table.data["own_damage_rate_percent"]["A"][0]["rates"][1] == Decimal("3.9999")
        assert jsonvalues.decode(row.data) == table.data
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.id > mark)).one()
        assert (entry.action, entry.entity_id) == ("rate_tables.upload", str(row.id))
        assert entry.details["version"] == row.version
        assert "data" not in (entry.changes or {})


def test_a_bad_or_duplicate_table_is_refused_and_nothing_is_written(
    app: Flask, quoting: Tenant, q_admin: Staff, q_manager: Staff, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        user = as_user(q_admin)
        before, mark = _count(RateTable), _last_entry()
        with pytest.raises(ProductInvalid) as bad:
            operations.upload_rate_table(MOTOR, "bad.csv", motor_csv(bad_cell="abc"), user=user)
        # The plugin names the line and column of the bad cell.
        assert any("1001_to_1500cc" in name for name in bad.value.errors), bad.value.errors
        with pytest.raises(ProductInvalid) as kind:
            operations.upload_rate_table(MOTOR, "tariff.pdf", b"%PDF", user=user)
        assert list(kind.value.errors) == ["file"]
        with pytest.raises(ProductInvalid) as empty:
            operations.upload_rate_table(MOTOR, "tariff.csv", b"", user=user)
        assert empty.value.errors == {"file": ["The file is empty."]}
        with pytest.raises(ProductInvalid) as elsewhere:
            operations.upload_rate_table("travel", "t.csv", motor_csv(), user=user)
        assert list(elsewhere.value.errors) == ["line_code"]
        assert (_count(RateTable), _actions(mark)) == (before, [])

        first = operations.upload_rate_table(MOTOR, "a.csv", motor_csv("3.3"), user=user)
        with pytest.raises(ProductInvalid) as duplicate:
            # The same tariff, another file name: the same version, never replaced.
            operations.upload_rate_table(MOTOR, "b.csv", motor_csv("3.3"), user=user)
        assert "already loaded" in duplicate.value.errors["version"][0]
        assert _count(RateTable) == before + 1
        assert queries.rate_table_by_version(MOTOR, first.version).source_filename == "a.csv"
        # Rate tables are settings: a manager may not upload one.
        with pytest.raises(Denied):
            operations.upload_rate_table(MOTOR, "c.csv", motor_csv("3.4"), user=as_user(q_manager))


def test_versions_are_checked(
    app: Flask, quoting: Tenant, q_admin: Staff, q_manager: Staff, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        life_table = operations.upload_rate_table(
            LIFE,
            "basis.csv",
            b"age,all\n" + b"".join(f"{a},0.00{a}\n".encode() for a in range(18, 100)),
            user=as_user(q_admin),
        )
        user = as_user(q_manager)
        with pytest.raises(ProductInvalid) as refused:
            operations.add_product_version(
                products_on[MOTOR], "2026-02-30", life_table.id, "x" * 3000, user=user
            )
        assert set(refused.value.errors) == {"effective_from", "rate_table_id", "notes"}
        with pytest.raises(ProductInvalid) as taken:
            operations.add_product_version(
                products_on[MOTOR], operations.DEFAULT_EFFECTIVE_FROM, None, user=user
            )
        assert "already starts on" in taken.value.errors["effective_from"][0]
        version = operations.add_product_version(
            products_on[LIFE], date(2030, 1, 1), life_table.id, "new basis", user=user
        )
        assert queries.version_in_force(products_on[LIFE], date(2030, 6, 1)).id == version.id
        assert queries.version_in_force(products_on[LIFE], date(2029, 12, 31)).id != version.id


def test_grace_and_revival_settings(
    app: Flask, quoting: Tenant, q_manager: Staff, q_agent: Staff, products_on: dict[str, int]
) -> None:
    with rolled_back_session(app, quoting):
        user = as_user(q_manager)
        with pytest.raises(ProductInvalid) as bad:
            operations.update_product(
                products_on[LIFE],
                grace_days={"annual": 30, "monthly": -1},
                revival_years="forever",
                user=user,
            )
        assert set(bad.value.errors) == {"grace_days", "revival_years"}
        mark = _last_entry()
        grace = {"annual": 45, "half_yearly": 30, "quarterly": 30, "monthly": "20"}
        product = operations.update_product(
            products_on[LIFE], grace_days=grace, revival_years=None, user=user
        )
        assert product.grace_days["monthly"] == 20 and product.revival_years is None
        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.id > mark)).one()
        assert entry.action == "products.update"
        assert entry.changes["revival_years"] == {"before": 5, "after": None}
        with pytest.raises(Denied):
            operations.update_product(products_on[LIFE], name="Mine", user=as_user(q_agent))


def test_a_rated_quote_uses_an_uploaded_table_after_its_round_trip(
    app: Flask, quoting: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    """Stored, committed (to the savepoint), expired and read back: the same premium as
    the default table for the same rates, so nothing was lost on the way."""
    with rolled_back_session(app, quoting):
        user = as_user(q_admin)
        row = operations.upload_rate_table(MOTOR, "same.csv", motor_csv("3.2830"), user=user)
        operations.add_product_version(products_on[MOTOR], date(2031, 1, 1), row.id, user=user)
        db.session.expire_all()
        rated = rating.rate(MOTOR, REFERENCE_MOTOR, date(2031, 1, 1))
        assert (rated.premium, rated.rate_table_version) == (Decimal("14391.12"), row.version)


def test_a_table_cannot_take_the_default_tables_version(
    app: Flask, quoting: Tenant, q_admin: Staff, products_on: dict[str, int]
) -> None:
    """Traces name "default-1" for the plugin's own table; an upload of that name would
    make old quotes replay on the tenant's table instead."""
    tariff = jsonvalues.plain(DEFAULT_TARIFF.data)
    with rolled_back_session(app, quoting):
        user = as_user(q_admin)
        for version, accepted in (("default-1", False), ("tenant-2026", True)):
            content = json.dumps({**tariff, "version": version}).encode()
            if accepted:
                row = operations.upload_rate_table(MOTOR, "t.json", content, user=user)
                assert rating.stored_table(row).data == DEFAULT_TARIFF.data
            else:
                with pytest.raises(ProductInvalid) as refused:
                    operations.upload_rate_table(MOTOR, "t.json", content, user=user)
                assert "default table" in refused.value.errors["version"][0]
