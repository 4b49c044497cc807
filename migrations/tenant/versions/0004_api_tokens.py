"""API tokens and clients

Revision ID: 0004_api_tokens
Revises: 0003_identity
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_api_tokens"
down_revision = "0003_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
