"""customer verifications (identity, credit)

Revision ID: 0008_verifications
Revises: 0007_customers
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0008_verifications"
down_revision = "0007_customers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
