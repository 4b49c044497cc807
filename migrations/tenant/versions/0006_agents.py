"""agents: profiles, hierarchy, territories

Revision ID: 0006_agents
Revises: 0005_personal_data
"""

import sqlalchemy as sa
from alembic import op

from migrations.columns import audit_columns_v1

revision = "0006_agents"
down_revision = "0005_personal_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        *audit_columns_v1(),
        sa.CheckConstraint("kind IN ('agency', 'team')", name=op.f("ck_org_units_kind")),
        sa.CheckConstraint(
            "kind = 'agency' OR parent_id IS NOT NULL", name=op.f("ck_org_units_team_has_parent")
        ),
        sa.CheckConstraint(
            "parent_id IS DISTINCT FROM id", name=op.f("ck_org_units_not_own_parent")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["org_units.id"],
            name=op.f("fk_org_units_parent_id_org_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_units")),
    )
    op.create_index(op.f("ix_org_units_parent_id"), "org_units", ["parent_id"])
    op.create_table(
        "org_unit_managers",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["org_units.id"],
            name=op.f("fk_org_unit_managers_unit_id_org_units"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_org_unit_managers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("unit_id", "user_id", name=op.f("pk_org_unit_managers")),
    )
    op.create_index(op.f("ix_org_unit_managers_user_id"), "org_unit_managers", ["user_id"])
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("licence_number", sa.String(length=50), nullable=False),
        sa.Column("licence_expires_on", sa.Date(), nullable=False),
        sa.Column("territories", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        *audit_columns_v1(),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agents_user_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["org_units.id"],
            name=op.f("fk_agents_team_id_org_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("user_id", name=op.f("uq_agents_user_id")),
    )
    op.create_index(op.f("ix_agents_team_id"), "agents", ["team_id"])
    op.create_index("ix_agents_licence_expires_on", "agents", ["licence_expires_on"])


def downgrade() -> None:
    op.drop_table("agents")
    op.drop_table("org_unit_managers")
    op.drop_table("org_units")
