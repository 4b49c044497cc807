"""Tenant slug rules."""

from __future__ import annotations

from core.tenancy import SLUG_RE

RESERVED_SLUGS = frozenset({"www", "api", "admin", "app", "public", "static", "mail"})


class InvalidSlug(ValueError):
    """The slug cannot name a tenant; the message says why."""


def validate_slug(slug: str) -> str:
    """Return the slug if it may name a tenant, else raise InvalidSlug with the reason."""
    if not isinstance(slug, str) or not slug:
        raise InvalidSlug("a slug is required")
    # fullmatch: with `match`, `$` also matches before a trailing newline ("acme\n").
    if not SLUG_RE.fullmatch(slug):
        raise InvalidSlug(
            f"slug {slug!r} must be 3-40 characters of a-z, 0-9 and '-', starting with a letter"
        )
    if slug.endswith("-") or "--" in slug:
        raise InvalidSlug(f"slug {slug!r} may not end with '-' or contain '--'")
    if slug in RESERVED_SLUGS:
        raise InvalidSlug(f"slug {slug!r} is reserved")
    if slug.startswith("pg"):
        raise InvalidSlug(f"slug {slug!r} may not start with 'pg' (reserved by PostgreSQL)")
    return slug
