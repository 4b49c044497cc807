"""Customer verifications: plugin checks only for tenants that enabled the plugin,
manual checks with a stored and hashed evidence file, validation, reach."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import func, select

from core import plugins
from core.customers import verification
from core.customers.rules import CustomerInvalid
from core.customers.verification import CustomerVerification
from core.db import db
from core.security.models import User
from core.tenancy import Tenant, tenant_context
from tests.conftest import rolled_back_session
from tests.customers.conftest import Caller, created, person, word
from tests.customers.verification_plugin import (
    CREDIT_SERVICE,
    IDENTITY_SERVICE,
    NAME,
    VerificationPlugin,
)
from tests.security.conftest import audit_entries, last_audit_id


@pytest.fixture
def plugin(app: Flask, monkeypatch: pytest.MonkeyPatch) -> VerificationPlugin:
    host = plugins.PluginHost()
    plugin = VerificationPlugin()
    host.register(plugin, NAME)
    monkeypatch.setitem(app.extensions, plugins.EXTENSION, host)
    return plugin


def count(app: Flask, tenant: Tenant, customer_id: int) -> int:
    with app.app_context(), tenant_context(tenant):
        return db.session.scalar(
            select(func.count())
            .select_from(CustomerVerification)
            .where(CustomerVerification.customer_id == customer_id)
        )


def test_an_enabled_plugin_verifies_and_the_check_is_recorded(
    app: Flask, alpha: Tenant, manager: Caller, plugin: VerificationPlugin
) -> None:
    customer = created(manager, person(last_name="Rowe" + word(4).lower()))
    enabled = dataclasses.replace(alpha, enabled_plugins=frozenset({NAME}))
    with rolled_back_session(app, alpha), tenant_context(enabled):
        user = db.session.get(User, manager.user_id)
        mark = db.session.scalar(select(func.max(verification.audit.AuditEntry.id))) or 0
        row = verification.verify(customer["id"], "identity", IDENTITY_SERVICE, user=user)
        credit = verification.verify(customer["id"], "credit", CREDIT_SERVICE, user=user)
        assert (row.outcome, row.service, row.reference) == (
            "referred",
            IDENTITY_SERVICE,
            f"ID-{customer['last_name']}",
        )
        assert row.evidence == {"plugin": NAME, "score": None, "matched": ["name"]}
        assert row.checked_by == str(manager.user_id)
        assert (credit.outcome, credit.evidence["score"]) == ("referred", 720)
        # The hook saw the customer's data, decrypted.
        assert plugin.people[0]["date_of_birth"] == customer["date_of_birth"]
        assert [r.id for r in verification.latest(customer["id"], user=user)] == [
            credit.id,
            row.id,
        ]
        entries = db.session.scalars(
            select(verification.audit.AuditEntry).where(
                verification.audit.AuditEntry.action == "customers.verify",
                verification.audit.AuditEntry.id > mark,
            )
        ).all()
        assert [e.entity_id for e in entries] == [str(customer["id"])] * 2
        assert entries[0].details["service"] == IDENTITY_SERVICE


def test_a_tenant_without_the_plugin_cannot_use_its_service(
    app: Flask, alpha: Tenant, manager: Caller, plugin: VerificationPlugin
) -> None:
    customer = created(manager, person())
    with rolled_back_session(app, alpha):
        user = db.session.get(User, manager.user_id)
        assert verification.services("identity") == []
        with pytest.raises(CustomerInvalid) as refused:
            verification.verify(customer["id"], "identity", IDENTITY_SERVICE, user=user)
        assert "service" in refused.value.errors
    assert plugin.people == []
    # Over the API too: 422, nothing written.
    path = f"/customers/{customer['id']}/verifications"
    response = manager.call("POST", path, json={"kind": "identity", "service": IDENTITY_SERVICE})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "service" in response.json["errors"]
    assert count(app, alpha, customer["id"]) == 0


def test_manual_check_with_evidence_file_is_stored_hashed_and_audited(
    app: Flask, alpha: Tenant, manager: Caller
) -> None:
    customer = created(manager, person())
    content = b"%PDF-1.4 passport scan " + word().encode()
    mark = last_audit_id(app, alpha)
    with app.app_context(), tenant_context(alpha):
        user = db.session.get(User, manager.user_id)
        row = verification.record_manual(
            customer["id"],
            "identity",
            "passed",
            "Passport 123",
            ("Passport Scan.PDF", io.BytesIO(content)),
            user=user,
        )
        folder = verification.evidence_dir()
        evidence = row.evidence
    assert folder == Path(app.config["INSTANCE_PATH"]) / "uploads" / alpha.slug / "evidence"
    assert evidence["name"] == "Passport Scan.PDF"
    assert evidence["size"] == len(content)
    assert evidence["sha256"] == hashlib.sha256(content).hexdigest()
    assert evidence["file"].endswith(".pdf") and evidence["file"] != "Passport Scan.PDF"
    assert (folder / evidence["file"]).read_bytes() == content
    (entry,) = audit_entries(app, alpha, "customers.verify", mark)
    assert entry.entity_id == str(customer["id"])
    assert entry.details["service"] == "manual" and entry.details["outcome"] == "passed"

    listed = manager.call("GET", f"/customers/{customer['id']}/verifications")
    assert listed.status_code == 200
    (item,) = listed.json["items"]
    assert (item["service"], item["reference"], item["evidence"]) == (
        "manual",
        "Passport 123",
        evidence,
    )


def test_manual_check_over_the_api(app: Flask, alpha: Tenant, manager: Caller) -> None:
    customer = created(manager, person())
    path = f"/customers/{customer['id']}/verifications"
    body = {"kind": "credit", "service": "manual", "outcome": "failed", "reference": "CRA-9"}
    response = manager.call("POST", path, json=body)
    assert response.status_code == 201, response.json
    assert (response.json["outcome"], response.json["evidence"]) == ("failed", None)
    assert response.json["checked_by"] == str(manager.user_id)
    assert count(app, alpha, customer["id"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "passport", "service": "manual", "outcome": "passed"}, "kind"),
        ({"kind": "identity", "service": "manual", "outcome": "maybe"}, "outcome"),
        ({"kind": "identity", "service": "no-such-service"}, "service"),
        ({"kind": "identity"}, "service"),
        ({"kind": "identity", "service": "manual", "outcome": "passed", "x": 1}, "x"),
        (
            {"kind": "identity", "service": "manual", "outcome": "passed", "reference": 5},
            "reference",
        ),
    ],
)
def test_bad_input_is_422_with_nothing_written(
    app: Flask, alpha: Tenant, manager: Caller, body: dict, field: str
) -> None:
    customer = created(manager, person())
    mark = last_audit_id(app, alpha)
    response = manager.call("POST", f"/customers/{customer['id']}/verifications", json=body)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.json["errors"]
    assert count(app, alpha, customer["id"]) == 0
    assert audit_entries(app, alpha, "customers.verify", mark) == []


def test_another_tenants_customer_is_404(
    app: Flask, alpha: Tenant, beta: Tenant, manager: Caller, beta_manager: Caller
) -> None:
    customer = created(manager, person())
    path = f"/customers/{customer['id']}/verifications"
    body = {"kind": "identity", "service": "manual", "outcome": "passed"}
    assert beta_manager.call("POST", path, json=body).status_code == 404
    assert beta_manager.call("GET", path).status_code == 404
    assert count(app, alpha, customer["id"]) == 0


def test_an_agent_cannot_reach_a_customer_outside_their_book(
    app: Flask, alpha: Tenant, agent: Caller, other_agent: Caller
) -> None:
    customer = created(agent, person())
    path = f"/customers/{customer['id']}/verifications"
    body = {"kind": "identity", "service": "manual", "outcome": "passed"}
    assert other_agent.call("POST", path, json=body).status_code == 404
    assert other_agent.call("GET", path).status_code == 404
    assert count(app, alpha, customer["id"]) == 0


def test_migration_matches_the_model(app: Flask, alpha: Tenant) -> None:
    def ours(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", name) == "customer_verifications"

    with app.app_context(), tenant_context(alpha):
        context = MigrationContext.configure(db.session.connection(), opts={"include_object": ours})
        assert compare_metadata(context, db.metadata) == []
