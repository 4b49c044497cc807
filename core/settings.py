"""Tenant settings: named values each tenant may change, each with a default.

A setting that a tenant never changed has no row; `get` returns its default. The
catalogue below is the only place a setting is declared: its default and the check
its values must pass. Reads are cached for the rest of the app context (a request or
a job), so a request asking several times costs one query.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from flask import g, has_app_context
from sqlalchemy import String, event, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core import audit, generations, numbering
from core.audit import AuditMixin
from core.db import Base, TenantSession, db
from core.tenancy import require_tenant


class SettingInvalid(ValueError):
    """A value a setting does not accept (or a setting that does not exist)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Setting:
    default: Any
    # Returns the value to store (normalised) or raises ValueError with a message.
    check: Callable[[Any], Any]
    label: str


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError("must be a whole number") from None
        if str(number) != str(value).strip():
            raise ValueError("must be a whole number")
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return check


def _names(value: Any) -> list[str]:
    if not isinstance(value, list | tuple | frozenset):
        raise ValueError("must be a list of role names")
    names = sorted({str(v).strip() for v in value if str(v).strip()})
    if any(len(n) > 80 for n in names):
        raise ValueError("role names have at most 80 characters")
    return names


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return str(value)

    return check


def _channel(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise ValueError("must name a notification channel")
    return value.strip()


def _number_pattern(value: Any) -> str:
    return numbering.check_pattern(value)


CATALOGUE: dict[str, Setting] = {
    "mfa_required_roles": Setting(
        ["admin"], _names, "Roles that must use two-factor authentication"
    ),
    "session_idle_minutes": Setting(
        30, _int_between(1, 24 * 60), "Sign out after this many idle minutes"
    ),
    "session_absolute_hours": Setting(
        12, _int_between(1, 30 * 24), "Sign out this many hours after signing in"
    ),
    "lockout_threshold": Setting(
        5, _int_between(1, 100), "Lock an account after this many failed sign-ins in a row"
    ),
    # 0: the lock stays until an admin lifts it.
    "lockout_minutes": Setting(
        15, _int_between(0, 7 * 24 * 60), "Minutes a locked account stays locked (0: until lifted)"
    ),
    "invitation_hours": Setting(72, _int_between(1, 30 * 24), "Invitations expire after (hours)"),
    "agent_book_scope": Setting("own", _one_of("own", "all"), "What agents see of the book"),
    "email_channel": Setting("smtp", _channel, "Notification channel for email"),
    "policy_number_pattern": Setting(
        "POL-{yyyy}-{seq:06}", _number_pattern, "Policy numbers, e.g. POL-{yyyy}-{seq:06}"
    ),
    "renewal_offer_days": Setting(
        30, _int_between(1, 180), "Offer renewal this many days before a policy expires"
    ),
}


class TenantSetting(Base, AuditMixin):
    """A setting the tenant changed from its default."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)


def _declared(name: str) -> Setting:
    setting = CATALOGUE.get(name)
    if setting is None:
        raise SettingInvalid(name, "no such setting")
    return setting


def _generation() -> str:
    return f"settings:{require_tenant().id}"


# Any write of a setting, by whatever operation, makes every process read them again.
generations.track((TenantSetting,), _generation)


def _load() -> Mapping[str, Any]:
    return MappingProxyType(
        dict(db.session.execute(select(TenantSetting.name, TenantSetting.value)).all())
    )


_REQUEST_KEY = "_pb_settings_"


@event.listens_for(TenantSession, "after_rollback")
def _forget_unsaved(session: Any) -> None:
    # A value set in a transaction that rolled back was never stored: read again.
    if has_app_context():
        for key in [key for key in g if key.startswith(_REQUEST_KEY)]:
            g.pop(key, None)


def _cache() -> Mapping[str, Any]:
    """This tenant's stored values: read once per app context, from what the process
    remembers until a setting changes (core.generations), not from the database on
    every request. Read-only: `get` hands out copies."""
    key = f"{_REQUEST_KEY}{require_tenant().id}"
    cached = g.get(key)
    if cached is None:
        cached = generations.remembered("settings").get(_generation(), _load)
        setattr(g, key, cached)
    return cached


def get(name: str) -> Any:
    """The current tenant's value of `name`, or its default."""
    setting = _declared(name)
    stored = _cache()
    # Copies, so a caller changing a list cannot change the cache or the default.
    return copy.deepcopy(stored.get(name, setting.default))


def values() -> dict[str, Any]:
    """Every setting of the current tenant, defaults filled in."""
    return {name: get(name) for name in CATALOGUE}


def check(name: str, value: Any) -> Any:
    """The value as it would be stored; raises SettingInvalid."""
    setting = _declared(name)
    try:
        return setting.check(value)
    except ValueError as exc:
        raise SettingInvalid(name, str(exc)) from None


def set(name: str, value: Any) -> None:
    """Store `name` for the current tenant in db.session (the caller commits), audited."""
    normalised = check(name, value)
    before = get(name)
    if normalised == before:
        return
    row = db.session.get(TenantSetting, name)
    if row is None:
        db.session.add(TenantSetting(name=name, value=normalised))
    else:
        row.value = normalised
    # This request reads its own write at once; other requests once it commits.
    updated = {**_cache(), name: copy.deepcopy(normalised)}
    setattr(g, f"{_REQUEST_KEY}{require_tenant().id}", updated)
    audit.record(
        "settings.update",
        entity="setting",
        entity_id=name,
        before={"value": before},
        after={"value": normalised},
    )
