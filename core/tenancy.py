"""The current tenant, held in a ContextVar.

Only the tenant resolver (tenants/) and the job wrapper set it; everything else reads
it. Keeping it in a ContextVar rather than on `g` means the worker, the CLI and the web
share one notion of "the tenant of this unit of work".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{2,39}$")


class NoTenantError(RuntimeError):
    """Raised when tenant-scoped work is attempted with no tenant in context."""


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    schema: str
    role: str
    status: str = "active"
    enabled_plugins: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_active(self) -> bool:
        return self.status == "active"


def schema_name(slug: str) -> str:
    """`acme-re` -> `t_acme_re`. Slugs never contain `_`, so the mapping is one-to-one."""
    if not SLUG_RE.fullmatch(slug):
        raise ValueError(f"invalid tenant slug {slug!r}")
    return "t_" + slug.replace("-", "_")


def role_name(slug: str, prefix: str = "") -> str:
    """The PostgreSQL role owning the tenant schema.

    Roles are cluster-wide while schemas live in one database, so a deployment that
    shares a cluster between databases (tests next to development) sets a prefix.
    """
    return prefix + schema_name(slug)


_current: ContextVar[Tenant | None] = ContextVar("powerbuyer_tenant", default=None)


def current_tenant() -> Tenant | None:
    return _current.get()


def require_tenant() -> Tenant:
    tenant = _current.get()
    if tenant is None:
        raise NoTenantError("no tenant in context")
    return tenant


def set_tenant(tenant: Tenant | None) -> object:
    """Set the tenant; returns a token for `reset_tenant`."""
    return _current.set(tenant)


def reset_tenant(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


@contextmanager
def tenant_context(tenant: Tenant | None) -> Iterator[Tenant | None]:
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


def tenant_key(*parts: object) -> str:
    """A Redis/cache key that carries the current tenant: `pb:t:<slug>:<parts>`."""
    tenant = require_tenant()
    return ":".join(["pb", "t", tenant.slug, *map(str, parts)])


def platform_key(*parts: object) -> str:
    """A Redis key that belongs to no tenant (signup progress, locks on the registry)."""
    return ":".join(["pb", "platform", *map(str, parts)])
