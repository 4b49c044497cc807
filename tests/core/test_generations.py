"""core.generations: what a process remembers is kept until the generation of its name
changes in Redis, whoever changes it; a commit publishes a tracked write, a rollback
publishes nothing; without Redis nothing is remembered. Settings and product offers,
the two tenant-wide things remembered this way, are seen changed at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import delete, text

from core import generations, settings
from core.db import db
from core.products import queries as product_queries
from core.products.models import Product, ProductVersion
from core.tenancy import Tenant, tenant_context
from tests.conftest import make_tenant

MOTOR = "motor_private_car"


class Loads:
    """A loader that counts its calls and answers a new value each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def _bump_elsewhere(app: Flask, name: str) -> None:
    Redis.from_url(app.config["REDIS_URL"]).incr(generations.key(name))


def test_a_value_is_kept_until_another_process_bumps_its_generation(app: Flask) -> None:
    name, load = f"test:{uuid.uuid4().hex}", Loads()
    remembered: generations.Remembered[int] = generations.Remembered()
    with app.app_context():
        assert remembered.get(name, load) == 1
        assert remembered.get(name, load) == 1
        _bump_elsewhere(app, name)
        assert remembered.get(name, load) == 2
        assert remembered.get(name, load) == 2
        _bump_elsewhere(app, f"test:{uuid.uuid4().hex}")  # another name: no effect
        assert remembered.get(name, load) == 2


def test_parts_of_one_name_change_together(app: Flask) -> None:
    name = f"test:{uuid.uuid4().hex}"
    remembered: generations.Remembered[str] = generations.Remembered()
    with app.app_context():
        first = remembered.get(name, lambda: "one@1", part=1)
        second = remembered.get(name, lambda: "two@1", part=2)
        assert (first, second) == ("one@1", "two@1")
        assert remembered.get(name, lambda: "one@2", part=1) == "one@1"
        _bump_elsewhere(app, name)
        assert remembered.get(name, lambda: "one@2", part=1) == "one@2"
        assert remembered.get(name, lambda: "two@2", part=2) == "two@2"


def test_without_redis_nothing_is_remembered(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generations, "current", lambda name: None)
    remembered: generations.Remembered[int] = generations.Remembered()
    load = Loads()
    with app.app_context():
        assert [remembered.get("test:x", load) for _ in range(3)] == [1, 2, 3]


def _counter(app: Flask, name: str) -> int:
    return int(Redis.from_url(app.config["REDIS_URL"]).get(generations.key(name)) or 0)


@pytest.fixture
def setting_restored(app: Flask, alpha: Tenant) -> Iterator[Callable[[], None]]:
    def restore() -> None:
        with app.app_context(), tenant_context(alpha):
            db.session.execute(delete(settings.TenantSetting).where(
                settings.TenantSetting.name == "renewal_offer_days"
            ))  # fmt: skip
            db.session.commit()
            generations.changed(f"settings:{alpha.id}")

    yield restore
    restore()


def test_a_committed_setting_is_published_and_a_rolled_back_one_is_not(
    app: Flask, alpha: Tenant, setting_restored: Callable[[], None]
) -> None:
    name = f"settings:{alpha.id}"
    with app.app_context(), tenant_context(alpha):
        before = _counter(app, name)
        settings.set("renewal_offer_days", 45)
        db.session.rollback()
        assert _counter(app, name) == before
        assert settings.get("renewal_offer_days") == 30
        settings.set("renewal_offer_days", 45)
        db.session.commit()
        assert _counter(app, name) == before + 1
    with app.app_context(), tenant_context(alpha):
        assert settings.get("renewal_offer_days") == 45


def test_a_setting_changed_by_another_process_is_read_at_the_next_request(
    app: Flask, alpha: Tenant, setting_restored: Callable[[], None]
) -> None:
    with app.app_context(), tenant_context(alpha):
        assert settings.get("renewal_offer_days") == 30  # now remembered
    with app.app_context(), tenant_context(alpha):
        db.session.execute(
            text("INSERT INTO settings (name, value) VALUES ('renewal_offer_days', '60')")
        )
        db.session.commit()
    with app.app_context(), tenant_context(alpha):
        assert settings.get("renewal_offer_days") == 30  # nobody said
    _bump_elsewhere(app, f"settings:{alpha.id}")
    with app.app_context(), tenant_context(alpha):
        assert settings.get("renewal_offer_days") == 60


def test_a_product_disabled_by_another_process_is_no_longer_offered(app: Flask) -> None:
    """Offers are read from memory: an ORM write publishes itself; a product switched
    off behind the ORM's back is offered until the bump that should go with it."""
    tenant = make_tenant(app, f"gen{uuid.uuid4().hex[:8]}")
    with app.app_context(), tenant_context(tenant):
        assert product_queries.offer(MOTOR) is None  # remembered: no products
        product = Product(line_code=MOTOR, name="Motor", grace_days={})
        db.session.add(product)
        db.session.flush()
        db.session.add(ProductVersion(product_id=product.id, effective_from=date(2020, 1, 1)))
        db.session.commit()
    with app.app_context(), tenant_context(tenant):
        offer = product_queries.offer(MOTOR)
        assert offer is not None and offer.in_force(date(2026, 1, 1)) is not None
        db.session.execute(text("UPDATE products SET is_active = false"))
        db.session.commit()
    with app.app_context(), tenant_context(tenant):
        assert product_queries.offer(MOTOR) is not None  # nobody said
    _bump_elsewhere(app, f"products:{tenant.id}")
    with app.app_context(), tenant_context(tenant):
        assert product_queries.offer(MOTOR) is None
