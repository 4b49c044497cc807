"""Fixtures shared by the tenant tests."""

from tests.tenants.support import new_slug

__all__ = ["new_slug"]
