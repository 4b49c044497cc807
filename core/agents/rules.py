"""Licence rules: when an agent may bind business, and how a licence stands today."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from core.agents.models import Agent

# The dashboard warns this many days before a licence expires.
ALERT_DAYS = 30

LicenceStatus = Literal["valid", "expiring", "expired"]


def can_bind(agent: Agent, on: date | None = None) -> bool:
    """An active agent whose licence is valid on `on` (default today) may bind business.
    The expiry date is the licence's last valid day."""
    day = on or date.today()
    return agent.is_active and day <= agent.licence_expires_on


def licence_status(agent: Agent, on: date | None = None, days: int = ALERT_DAYS) -> LicenceStatus:
    """ "expired" after the expiry date, "expiring" within `days` of it, else "valid"."""
    day = on or date.today()
    if day > agent.licence_expires_on:
        return "expired"
    if agent.licence_expires_on <= day + timedelta(days=days):
        return "expiring"
    return "valid"
