"""Identity and credit checks of customers: by a verification plugin, or by hand.

A plugin check asks the service's hook (core/hookspecs.py, verification family) for
the current tenant: only plugins the tenant enabled answer, so a service a tenant did
not enable is unknown to it. A manual check is recorded by staff, with an optional
evidence file stored under INSTANCE_PATH/uploads/<tenant slug>/evidence/.
Every check is one transaction with its audit entry ("customers.verify").
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_login import current_user
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core import audit, plugins
from core.audit import AuditMixin
from core.customers import queries
from core.customers.rules import CustomerInvalid
from core.db import Base, db
from core.hookspecs import VerificationResult, VerificationService
from core.security.authz import authorize
from core.tenancy import require_tenant

IDENTITY, CREDIT = "identity", "credit"
KINDS = (IDENTITY, CREDIT)
OUTCOMES = ("passed", "failed", "referred")
MANUAL = "manual"
ACTION = "customers.verify"
HOOKS = {IDENTITY: "powerbuyer_verify_identity", CREDIT: "powerbuyer_check_credit"}
# Plugins say "review" for what brokers call a referral: a person must look at it.
_OUTCOME_OF = {"passed": "passed", "failed": "failed", "review": "referred"}
REFERENCE_MAX = 200
EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
EVIDENCE_SUFFIX_MAX = 10


class CustomerVerification(AuditMixin, Base):
    """One identity or credit check of a customer and what it found."""

    __tablename__ = "customer_verifications"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", "kind"),
        CheckConstraint(f"outcome IN {OUTCOMES!r}", "outcome"),
        Index("ix_customer_verifications_customer_id_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    # The service code a plugin answered for, or "manual".
    service: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(10))
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_MAX))
    # A plugin's details, or a manual check's file: {"file", "name", "size", "sha256"}.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    checked_by: Mapped[str | None] = mapped_column(String(255))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _checker(user: Any) -> str | None:
    ident = getattr(current_user if user is None else user, "id", None)
    return None if ident is None else str(ident)


def services(kind: str) -> list[VerificationService]:
    """The services of `kind` the current tenant's enabled plugins offer."""
    offered = plugins.call("powerbuyer_verification_services")
    return [s for group in offered for s in group if s.kind == kind]


def _person(customer: Any) -> dict[str, Any]:
    names = (
        "kind",
        "first_name",
        "last_name",
        "date_of_birth",
        "company_name",
        "registration_number",
        "national_id",
        "email",
        "phone",
        "address",
    )
    return {name: getattr(customer, name) for name in names}


def _check_kind(kind: Any, errors: dict[str, list[str]]) -> None:
    if kind not in KINDS:
        errors["kind"] = [f"Must be one of: {', '.join(KINDS)}."]


def _committed(row: CustomerVerification, details: dict[str, Any]) -> CustomerVerification:
    try:
        db.session.add(row)
        db.session.flush()
        audit.record(
            ACTION,
            entity="customer",
            entity_id=row.customer_id,
            details={"verification_id": row.id, **details},
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return row


def verify(customer_id: int, kind: str, service: str, *, user: Any = None) -> CustomerVerification:
    """Check the customer with plugin service `service`. CustomerInvalid (nothing
    written) for an unknown kind, or a service no enabled plugin offers or answers."""
    authorize("customers:update", user)
    customer = queries.get(customer_id, user)
    errors: dict[str, list[str]] = {}
    _check_kind(kind, errors)
    if not errors and service not in {s.code for s in services(kind)}:
        errors["service"] = [f"No enabled {kind} verification service is called {service!r}."]
    if errors:
        raise CustomerInvalid(errors)
    found = plugins.manager().results(HOOKS[kind], service=service, person=_person(customer))
    if not found or not isinstance(found[0].value, VerificationResult):
        raise CustomerInvalid({"service": [f"The service {service!r} gave no answer."]})
    result: VerificationResult = found[0].value
    outcome = _OUTCOME_OF.get(result.outcome)
    if outcome is None:
        raise CustomerInvalid({"service": [f"The service answered {result.outcome!r}."]})
    row = CustomerVerification(
        customer_id=customer.id,
        kind=kind,
        service=service,
        outcome=outcome,
        reference=str(result.reference)[:REFERENCE_MAX],
        evidence={"plugin": found[0].plugin, "score": result.score, **dict(result.details)},
        checked_by=_checker(user),
        checked_at=datetime.now(UTC),
    )
    return _committed(row, {"kind": kind, "service": service, "outcome": outcome})


def evidence_dir() -> Path:
    return (
        Path(current_app.config["INSTANCE_PATH"]) / "uploads" / require_tenant().slug / "evidence"
    )


def _store(name: str, stream: IO[bytes]) -> dict[str, Any]:
    """Save the file under a fresh uuid name; its original name is kept only as data."""
    suffix = Path(name).suffix.lower()
    if len(suffix) > EVIDENCE_SUFFIX_MAX or not suffix[1:].isalnum():
        suffix = ""
    folder = evidence_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4()}{suffix}"
    digest, size = hashlib.sha256(), 0
    with path.open("xb") as out:
        while chunk := stream.read(64 * 1024):
            size += len(chunk)
            if size > EVIDENCE_MAX_BYTES:
                out.close()
                path.unlink()
                raise CustomerInvalid({"evidence": ["The file is larger than 10 MB."]})
            digest.update(chunk)
            out.write(chunk)
    return {"file": path.name, "name": name, "size": size, "sha256": digest.hexdigest()}


def record_manual(
    customer_id: int,
    kind: str,
    outcome: str,
    reference: str | None,
    evidence_file: tuple[str, IO[bytes]] | None = None,
    *,
    user: Any = None,
) -> CustomerVerification:
    """A check staff made by hand; `evidence_file` is (original name, binary stream)."""
    authorize("customers:update", user)
    customer = queries.get(customer_id, user)
    errors: dict[str, list[str]] = {}
    _check_kind(kind, errors)
    if outcome not in OUTCOMES:
        errors["outcome"] = [f"Must be one of: {', '.join(OUTCOMES)}."]
    if reference is not None and (not isinstance(reference, str) or len(reference) > REFERENCE_MAX):
        errors["reference"] = [f"Must be text of at most {REFERENCE_MAX} characters."]
    if errors:
        raise CustomerInvalid(errors)
    evidence = None if evidence_file is None else _store(*evidence_file)
    row = CustomerVerification(
        customer_id=customer.id,
        kind=kind,
        service=MANUAL,
        outcome=outcome,
        reference=reference or None,
        evidence=evidence,
        checked_by=_checker(user),
        checked_at=datetime.now(UTC),
    )
    try:
        return _committed(row, {"kind": kind, "service": MANUAL, "outcome": outcome})
    except BaseException:
        if evidence is not None:  # the row is gone: so is its file
            (evidence_dir() / evidence["file"]).unlink(missing_ok=True)
        raise


def latest(customer_id: int, *, user: Any = None) -> list[CustomerVerification]:
    """The customer's checks, newest first."""
    customer = queries.get(customer_id, user)
    statement = (
        select(CustomerVerification)
        .where(CustomerVerification.customer_id == customer.id)
        .order_by(CustomerVerification.id.desc())
        .limit(100)
    )
    return list(db.session.scalars(statement))


def as_dict(row: CustomerVerification) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "kind": row.kind,
        "service": row.service,
        "outcome": row.outcome,
        "reference": row.reference,
        "evidence": row.evidence,
        "checked_by": row.checked_by,
        "checked_at": row.checked_at.isoformat(),
    }
