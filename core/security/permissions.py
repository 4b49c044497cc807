"""The permission catalogue and the four default roles (PRODUCT.md, "Roles and permissions").

Permissions are `<module>:<operation>` strings stored on roles. Tenants may edit the
default roles or add their own; these are only the starting grants.
"""

from __future__ import annotations

MODULES = (
    "customers",
    "agents",
    "products",
    "policies",
    "billing",
    "claims",
    "documents",
    "reports",
    "settings",
    "audit",
)
CRUD = ("create", "read", "update", "delete")
SPECIAL = ("claims:approve", "billing:refund", "reports:export", "customers:export")
# The customer portal is one permission: what a customer sees there is limited to their
# own records by object-level checks, not by more permissions.
PORTAL = "portal:access"

ALL_PERMISSIONS: frozenset[str] = frozenset(
    [f"{module}:{op}" for module in MODULES for op in CRUD] + list(SPECIAL) + [PORTAL]
)

BUSINESS_MODULES = tuple(m for m in MODULES if m not in ("settings", "audit"))

DEFAULT_ROLES: dict[str, frozenset[str]] = {
    "admin": ALL_PERMISSIONS - {PORTAL},
    "manager": frozenset(
        [f"{module}:{op}" for module in BUSINESS_MODULES for op in CRUD]
        + list(SPECIAL)
        + ["audit:read"]
    ),
    # On their own book only: object-level checks narrow what these reach.
    "agent": frozenset(
        {
            "customers:create",
            "customers:read",
            "customers:update",
            "policies:create",
            "policies:read",
            "policies:update",
            "claims:create",
            "claims:read",
            "billing:create",
            "billing:read",
            "documents:create",
            "documents:read",
            "documents:update",
            "reports:read",
        }
    ),
    "customer": frozenset({PORTAL}),
}

ROLE_DESCRIPTIONS = {
    "admin": "Everything, including settings and the audit trail",
    "manager": "Every business module, approvals up to a limit, refunds, reports",
    "agent": "Their own book: customers, policies, claims, billing, documents",
    "customer": "Portal only: their own policies, bills, claims and documents",
}


def validate(permissions: set[str] | frozenset[str]) -> frozenset[str]:
    """Refuse unknown permission names (a typo must not silently grant nothing)."""
    unknown = set(permissions) - ALL_PERMISSIONS
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
    return frozenset(permissions)
