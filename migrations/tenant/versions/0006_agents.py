"""agents: profiles, hierarchy, territories

Revision ID: 0006_agents
Revises: 0005_personal_data
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0006_agents"
down_revision = "0005_personal_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
