"""customers: buyers, contacts, search, dedupe

Revision ID: 0007_customers
Revises: 0006_agents
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007_customers"
down_revision = "0006_agents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
