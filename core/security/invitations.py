"""Invitations: a one-time, expiring link that lets a person set a password and join.

The link carries 256 random bits; only their SHA-256 digest is stored, so a copy of
the table opens no account (there is no dictionary to try against random tokens, so
a fast digest is as good as a slow one). A token is used at most once: `claim` marks
it with one conditional UPDATE, which a second use, an expired or a revoked
invitation cannot pass.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.audit import AuditMixin
from core.db import Base, db
from core.security.models import Role

PENDING, ACCEPTED, EXPIRED, REVOKED = "pending", "accepted", "expired", "revoked"


class Invitation(Base, AuditMixin):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), index=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The account the invitation created.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    role: Mapped[Role] = relationship(lazy="joined")

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return ACCEPTED
        if self.revoked_at is not None:
            return REVOKED
        if self.expires_at <= datetime.now(UTC):
            return EXPIRED
        return PENDING


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    email: str, role: Role, *, hours: int, invited_by_id: int | None
) -> tuple[Invitation, str]:
    """Add an invitation to db.session and return it with its token (shown only in the
    link). Earlier pending invitations of the same address are revoked: one link works."""
    revoke_pending(email)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        email=email,
        role=role,
        token_hash=digest(token),
        invited_by_id=invited_by_id,
        expires_at=datetime.now(UTC) + timedelta(hours=hours),
    )
    db.session.add(invitation)
    db.session.flush()
    return invitation, token


def revoke_pending(email: str) -> int:
    result = db.session.execute(
        update(Invitation)
        .where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    return result.rowcount


def revoke(invitation_id: int) -> Invitation | None:
    """Revoke one pending invitation; None when there is no such pending invitation."""
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None or invitation.status != PENDING:
        return None
    invitation.revoked_at = datetime.now(UTC)
    return invitation


def find(token: str) -> Invitation | None:
    """The invitation a token belongs to, whatever its status."""
    if not token or len(token) > 100:
        return None
    return db.session.scalar(select(Invitation).where(Invitation.token_hash == digest(token)))


def claim(invitation: Invitation, user_id: int) -> bool:
    """Mark a pending invitation accepted by `user_id`; False when it no longer is
    pending (used, revoked or expired since it was read)."""
    claimed = db.session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > func.now(),
        )
        .values(accepted_at=func.now(), user_id=user_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed:
        db.session.refresh(invitation)
    return bool(claimed)


def pending() -> list[Invitation]:
    """Invitations not yet accepted, revoked or expired, newest first."""
    return list(
        db.session.scalars(
            select(Invitation)
            .where(
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > func.now(),
            )
            .order_by(Invitation.created_at.desc(), Invitation.id.desc())
        )
    )
