"""customer portal accounts: a portal user's customer, and the customer an invitation
to the portal was made for

Revision ID: 0010_portal_accounts
Revises: 0009_products
"""

import sqlalchemy as sa
from alembic import op

from migrations.columns import audit_columns_v1

revision = "0010_portal_accounts"
down_revision = "0009_products"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_accounts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        *audit_columns_v1(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_portal_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_portal_accounts_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_portal_accounts")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_portal_accounts_customer_id")),
    )
    op.create_table(
        "portal_invitations",
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        *audit_columns_v1(),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["invitations.id"],
            name=op.f("fk_portal_invitations_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_portal_invitations_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("invitation_id", name=op.f("pk_portal_invitations")),
    )
    op.create_index(
        op.f("ix_portal_invitations_customer_id"), "portal_invitations", ["customer_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_invitations_customer_id"), table_name="portal_invitations")
    op.drop_table("portal_invitations")
    op.drop_table("portal_accounts")
