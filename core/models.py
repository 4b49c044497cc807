"""Every tenant table, imported in one place for Alembic and for create-time checks."""

from core.jobs import Job
from core.security.models import Role, User

__all__ = ["Job", "Role", "User"]
