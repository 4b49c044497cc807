"""Agents and the brokerage's hierarchy: agency -> team -> agent.

An agent is a user with a licence to sell: the profile adds the licence, its expiry
and the territories worked. Organisation units form a tree (agencies hold teams,
an agency may sit under another agency); agents belong to a team. A unit's managers
see every agent below it (core.agents.queries.subtree_agent_ids).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.audit import AuditMixin
from core.db import Base
from core.security.models import User

AGENCY, TEAM = "agency", "team"
UNIT_KINDS = (AGENCY, TEAM)

NAME_MAX = 120
LICENCE_NUMBER_MAX = 50
TERRITORY_MAX = 100


class OrgUnit(AuditMixin, Base):
    """An agency or a team. Teams sit under an agency; agencies at the top or under
    another agency (core.agents.operations enforces the shape and refuses cycles)."""

    __tablename__ = "org_units"
    __table_args__ = (
        CheckConstraint(f"kind IN {UNIT_KINDS!r}", "kind"),
        CheckConstraint("kind = 'agency' OR parent_id IS NOT NULL", "team_has_parent"),
        CheckConstraint("parent_id IS DISTINCT FROM id", "not_own_parent"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_units.id", ondelete="RESTRICT"), index=True
    )

    managers: Mapped[list[User]] = relationship(
        secondary="org_unit_managers", lazy="selectin", order_by=User.email
    )


class OrgUnitManager(Base):
    """A user who manages a unit, and so sees its whole subtree."""

    __tablename__ = "org_unit_managers"

    unit_id: Mapped[int] = mapped_column(
        ForeignKey("org_units.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Agent(AuditMixin, Base):
    """A user's agent profile. `is_active` false: no longer an agent (kept for history)."""

    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_licence_expires_on", "licence_expires_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), unique=True)
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_units.id", ondelete="RESTRICT"), index=True
    )
    licence_number: Mapped[str] = mapped_column(String(LICENCE_NUMBER_MAX))
    # The last day the licence is valid.
    licence_expires_on: Mapped[date] = mapped_column(Date)
    territories: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")

    user: Mapped[User] = relationship(lazy="joined")
    team: Mapped[OrgUnit | None] = relationship(lazy="joined")

    @property
    def email(self) -> str:
        return self.user.email
