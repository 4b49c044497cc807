"""identity: settings, invitations, lockouts

Revision ID: 0003_identity
Revises: 0002_audit
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_identity"
down_revision = "0002_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
