"""An audited transaction's entries go in with its COMMIT, in one round trip
(core.audit: one psycopg pipeline from the connection's commit event). What it writes
is what the entries said, the hash chain stays intact, and an entry the database
refuses fails the commit: neither the entry nor the work it records is stored."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from core import audit
from core.audit import AuditEntry
from core.db import db
from core.settings import TenantSetting
from core.tenancy import tenant_context
from tests.conftest import make_tenant


def test_entries_are_written_with_the_commit_and_the_chain_verifies(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    piped: list[str] = []
    row = audit._row
    monkeypatch.setattr(audit, "_row", lambda entry: piped.append(entry["action"]) or row(entry))
    tenant = make_tenant(app, f"aud{uuid.uuid4().hex[:8]}")
    with app.app_context(), tenant_context(tenant), audit.acting_as("system:test"):
        db.session.add(TenantSetting(name="renewal_offer_days", value=40))
        audit.record("settings.update", entity="setting", entity_id="renewal_offer_days",
                     before={"value": 30}, after={"value": 40})  # fmt: skip
        audit.record("test.second", details={"n": 2})
        db.session.flush()
        assert piped == []  # a flush writes the work; the entries wait for the commit
        db.session.commit()
        assert piped == ["settings.update", "test.second"]
        entries = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    mine = [e for e in entries if e.actor == "system:test"]
    assert [e.action for e in mine] == ["settings.update", "test.second"]
    assert mine[0].entity_id == "renewal_offer_days" and mine[0].changes
    assert mine[1].details == {"n": 2} and mine[1].changes is None
    assert mine[1].prev_hash == mine[0].hash
    with app.app_context():
        report = audit.verify_tenant(db.engine, tenant)
    assert report.intact, report


def test_a_refused_entry_fails_the_commit_and_nothing_is_stored(app: Flask) -> None:
    tenant = make_tenant(app, f"aud{uuid.uuid4().hex[:8]}")
    with app.app_context(), tenant_context(tenant), audit.acting_as("system:test"):
        db.session.add(TenantSetting(name="renewal_offer_days", value=41))
        # `details` must be a JSON object (a check constraint): a list is refused.
        audit.record("test.refused", details=["not", "an", "object"])  # type: ignore[arg-type]
        with pytest.raises(DBAPIError):
            db.session.commit()
        db.session.rollback()
        assert db.session.get(TenantSetting, "renewal_offer_days") is None
        refused = select(AuditEntry).where(AuditEntry.action == "test.refused")
        assert db.session.scalars(refused).first() is None
        # The connection serves the next transaction as usual.
        audit.record("test.after", details={"ok": True})
        db.session.commit()
        after = select(AuditEntry).where(AuditEntry.action == "test.after")
        assert db.session.scalars(after).one().details == {"ok": True}
