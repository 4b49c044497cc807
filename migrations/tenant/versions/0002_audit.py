"""audit log

Revision ID: 0002_audit
Revises: 0001_tenant
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0002_audit"
down_revision = "0001_tenant"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
