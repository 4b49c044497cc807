"""Identity and credit checks of customers: by a verification plugin, or by hand.

A plugin check asks the service's hook (core/hookspecs.py, verification family) for
the current tenant: only plugins the tenant enabled answer, so a service a tenant did
not enable is unknown to it. A manual check is recorded by staff, with notes and an
optional evidence file stored under INSTANCE_PATH/uploads/<tenant slug>/evidence/
(named by a fresh uuid; the uploaded name is kept as data).
Every check is one transaction with its audit entry ("customers.verify", on the
customer's timeline); the entry says what was checked and the outcome, never the
reference, the notes or the file.

Checks are the customer's personal data (core.gdpr): exported with the customer, their
evidence files included, and deleted with their files when the customer is erased.
Evidence files are downloaded with `customers:export`, the permission that shows a
customer's personal data unmasked (docs/personal-data.md): a passport scan shows more
than the last four characters of an id.
"""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_login import current_user
from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core import audit, gdpr, plugins
from core.audit import AuditMixin
from core.customers import queries
from core.customers.models import Customer, customer_rows
from core.customers.rules import CustomerInvalid
from core.db import Base, committed, db
from core.gdpr import PersonalFile, PersonRef
from core.hookspecs import VerificationResult, VerificationService
from core.security import scope
from core.security.authz import authorize
from core.security.pii import pii
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
NOTES_MAX = 2000
EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
EVIDENCE_SUFFIX_MAX = 10
# Who may open an evidence file (see the module docstring).
EVIDENCE_PERMISSION = "customers:export"


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
    # A passport or file number: it identifies the person.
    reference: Mapped[str | None] = mapped_column(String(REFERENCE_MAX), info=pii("contact"))
    # A plugin's details; for a manual check, staff's "notes" and the evidence file:
    # "file" (the stored name), "name" (as uploaded), "size", "sha256".
    evidence: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True), info=pii("contact")
    )
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
    def work() -> CustomerVerification:
        db.session.add(row)
        db.session.flush()
        audit.record(
            ACTION,
            entity="customers",
            entity_id=row.customer_id,
            details={"verification_id": row.id, **details},
        )
        return row

    return committed(work)


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
    if size == 0:
        path.unlink()
        raise CustomerInvalid({"evidence": ["The file is empty."]})
    return {"file": path.name, "name": name, "size": size, "sha256": digest.hexdigest()}


def _optional_text(value: Any, limit: int, name: str, errors: dict[str, list[str]]) -> Any:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        errors[name] = [f"Must be text of at most {limit} characters."]
        return None
    return (value or "").strip() or None


def record_manual(
    customer_id: int,
    kind: str,
    outcome: str,
    reference: str | None,
    evidence_file: tuple[str, IO[bytes]] | None = None,
    *,
    notes: str | None = None,
    user: Any = None,
) -> CustomerVerification:
    """A check staff made by hand; `evidence_file` is (original name, binary stream).
    CustomerInvalid names every bad field; nothing is written (nor kept on disk) then."""
    authorize("customers:update", user)
    customer = queries.get(customer_id, user)
    errors: dict[str, list[str]] = {}
    _check_kind(kind, errors)
    if outcome not in OUTCOMES:
        errors["outcome"] = [f"Must be one of: {', '.join(OUTCOMES)}."]
    reference = _optional_text(reference, REFERENCE_MAX, "reference", errors)
    notes = _optional_text(notes, NOTES_MAX, "notes", errors)
    if errors:
        raise CustomerInvalid(errors)
    evidence = None if evidence_file is None else _store(*evidence_file)
    if notes is not None:
        evidence = {"notes": notes, **(evidence or {})}
    row = CustomerVerification(
        customer_id=customer.id,
        kind=kind,
        service=MANUAL,
        outcome=outcome,
        reference=reference,
        evidence=evidence,
        checked_by=_checker(user),
        checked_at=datetime.now(UTC),
    )
    try:
        return _committed(row, {"kind": kind, "service": MANUAL, "outcome": outcome})
    except BaseException:
        if evidence is not None and "file" in evidence:  # the row is gone: so is its file
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


# --- Evidence files ------------------------------------------------------------------


def _evidence_path(service: str, evidence: Mapping[str, Any] | None) -> Path | None:
    """Where a row's evidence file is, if it has one: only manual checks have files (a
    plugin's details are its own), and only a bare file name is taken, so a row can
    never point outside the tenant's evidence folder."""
    stored = (evidence or {}).get("file") if service == MANUAL else None
    if not isinstance(stored, str) or not stored or Path(stored).name != stored:
        return None
    return evidence_dir() / stored


def evidence_file(
    customer_id: int, verification_id: int, *, user: Any = None
) -> tuple[Path, str, str]:
    """The evidence file of check `verification_id` of the customer, as (path, name as
    uploaded, content type); OutOfReach (404) when the customer is out of reach, the
    check is not theirs or has no file. Audited ("customers.evidence"): someone saw it."""
    authorize(EVIDENCE_PERMISSION, user)
    customer = queries.get(customer_id, user)
    row = db.session.scalars(
        select(CustomerVerification).where(
            CustomerVerification.id == verification_id,
            CustomerVerification.customer_id == customer.id,
        )
    ).one_or_none()
    path = _evidence_path(row.service, row.evidence) if row is not None else None
    if row is None or path is None or not path.is_file():
        raise scope.OutOfReach()
    audit.record(
        "customers.evidence",
        entity="customers",
        entity_id=customer.id,
        details={"verification_id": row.id},
    )
    db.session.commit()
    name = str(row.evidence.get("name") or path.name)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path, name, content_type


# --- GDPR ---------------------------------------------------------------------------


def _verification_rows(ref: PersonRef) -> Any:
    customers = customer_rows(ref)
    if customers is None:
        return None
    return CustomerVerification.customer_id.in_(select(Customer.id).where(customers))


def _evidence_files(row: Mapping[str, Any]) -> Iterator[PersonalFile]:
    path = _evidence_path(row["service"], row["evidence"])
    if path is not None:
        yield PersonalFile(path, str(row["evidence"].get("name") or path.name))


# A check says who the person is and what was found: it goes with them, and so does
# its evidence file. Exported with what was checked, how it came out, and when.
gdpr.register(
    CustomerVerification,
    subject=_verification_rows,
    erase=gdpr.SHRED,
    age=CustomerVerification.checked_at,
    export_also=(
        CustomerVerification.customer_id,
        CustomerVerification.kind,
        CustomerVerification.service,
        CustomerVerification.outcome,
        CustomerVerification.checked_by,
        CustomerVerification.checked_at,
    ),
    files=_evidence_files,
)
