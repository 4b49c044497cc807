"""A brokerage signs up on the apex; a platform job provisions its tenant.

`start_signup` runs in the web request as the unprivileged application role, which
may only INSERT and SELECT `public.signups`: it validates, records the signup with
an argon2 hash of the password (never the password) and enqueues `run_signup` after
the commit. `run_signup` runs in the worker on the privileged connection. Progress
goes to the signup row in short transactions of their own, so the polling page sees
it while provisioning's single transaction is still open.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_security import hash_password
from sqlalchemy import Engine, func, select, text, update

from core import jobs
from core.db import db
from core.security import passwords
from tenants.admin import admin_engine
from tenants.models import Signup, TenantRecord
from tenants.names import InvalidSlug, validate_slug
from tenants.provisioning import NewTenant, TenantExists, create_tenant

log = logging.getLogger(__name__)

# A signup still queued or running after this long is stuck (its job was lost before
# it started), not pending: it no longer holds its slug.
PENDING_MINUTES = 30
FINISHED = frozenset({"done", "failed"})


class SignupInvalid(ValueError):
    """The signup breaks a rule; `errors` maps each form field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def normalize_slug(slug: str) -> str:
    return slug.strip().lower()


def check_signup(name: str, slug: str, admin_email: str, password: str) -> dict[str, list[str]]:
    """Field -> messages for everything wrong with this signup (empty when it may go)."""
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["Enter the brokerage's name."]
    elif len(name.strip()) > 200:
        errors["name"] = ["Use at most 200 characters."]
    try:
        validate_slug(slug)
    except InvalidSlug as exc:
        reason = str(exc)
        errors["slug"] = [reason[:1].upper() + reason[1:] + "."]
    else:
        if _slug_taken(slug):
            errors["slug"] = [f"The address {slug!r} is already taken."]
    try:
        validate_email(admin_email, check_deliverability=False)
    except EmailNotValidError as exc:
        errors["admin_email"] = [str(exc)]
    rejected = passwords.problems(password, email=admin_email, name=name, slug=slug)
    if rejected:
        errors["password"] = rejected
    return errors


def _slug_taken(slug: str) -> bool:
    tenant = select(TenantRecord.id).where(TenantRecord.slug == slug)
    pending = select(Signup.id).where(
        Signup.slug == slug,
        Signup.status.not_in(FINISHED),
        Signup.created_at > func.now() - timedelta(minutes=PENDING_MINUTES),
    )
    return bool(
        db.session.scalar(select(tenant.exists())) or db.session.scalar(select(pending.exists()))
    )


def start_signup(name: str, slug: str, admin_email: str, password: str) -> Signup:
    """Record the signup and queue its provisioning; raises SignupInvalid."""
    slug = normalize_slug(slug)
    # Serialise signups for one slug, so two at once cannot both pass the check.
    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"signup:{slug}"})
    errors = check_signup(name, slug, admin_email, password)
    if errors:
        db.session.rollback()
        raise SignupInvalid(errors)
    signup = Signup(
        slug=slug,
        name=name.strip(),
        admin_email=validate_email(admin_email, check_deliverability=False).normalized,
        password_hash=hash_password(passwords.validate(password)),
        status="queued",
        progress=0,
        message="Waiting for a worker",
    )
    db.session.add(signup)
    db.session.commit()
    jobs.enqueue_platform(run_signup, str(signup.id))
    return signup


def get_signup(signup_id: uuid.UUID) -> Signup | None:
    return db.session.get(Signup, signup_id)


def run_signup(signup_id: str) -> None:
    """Provision the signup's tenant. Safe to run again: a finished signup is left alone,
    one that failed for a passing reason (its password hash kept) is retried."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engine = admin_engine(app)
    sid = uuid.UUID(str(signup_id))
    with engine.begin() as conn:
        # Done, failed for good (hash cleared) or unknown: nothing to do.
        row = conn.execute(
            update(Signup)
            .where(Signup.id == sid, Signup.status != "done", Signup.password_hash.is_not(None))
            .values(status="running", progress=0, message="Starting", error=None)
            .returning(Signup.slug, Signup.name, Signup.admin_email, Signup.password_hash)
        ).first()
    if row is None:
        log.info("signup %s has nothing left to run", sid)
        return

    def report(percent: int, message: str) -> None:
        _set(engine, sid, Signup.status == "running", progress=percent, message=message)

    try:
        create_tenant(
            engine,
            NewTenant(row.slug, row.name, row.admin_email, row.password_hash),
            app_role=app.config["APP_DB_ROLE"],
            role_prefix=app.config["DB_ROLE_PREFIX"],
            progress=report,
        )
    except (TenantExists, InvalidSlug) as exc:
        # Permanent: a retry cannot succeed, so the password hash has no further use.
        _finish(engine, sid, "failed", error=str(exc), clear_hash=True)
        return
    except Exception:
        # Unexpected (say, the database went away): record it for the page, keep the
        # hash so running the job again can still provision, and let the worker log it.
        _finish(engine, sid, "failed", error="Provisioning failed; we are looking into it.")
        raise
    _finish(engine, sid, "done", message="Ready", clear_hash=True)
    log.info("signup %s provisioned tenant %s", sid, row.slug)


def _set(engine: Engine, sid: uuid.UUID, *where: object, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(update(Signup).where(Signup.id == sid, *where).values(**values))


def _finish(
    engine: Engine,
    sid: uuid.UUID,
    status: str,
    *,
    message: str | None = None,
    error: str | None = None,
    clear_hash: bool = False,
) -> None:
    values: dict[str, object] = {"status": status, "finished_at": func.now()}
    if status == "done":
        values.update(progress=100, error=None)
    if message is not None:
        values["message"] = message
    if error is not None:
        values["error"] = error
    if clear_hash:
        values["password_hash"] = None
    # A failure never overwrites a success recorded by a concurrent run of the same job.
    where = () if status == "done" else (Signup.status != "done",)
    _set(engine, sid, *where, **values)
