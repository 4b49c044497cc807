"""customer verifications (identity, credit)

Revision ID: 0008_verifications
Revises: 0007_customers
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.columns import audit_columns_v1

revision = "0008_verifications"
down_revision = "0007_customers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("service", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("checked_by", sa.String(length=255), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        *audit_columns_v1(),
        sa.CheckConstraint(
            "kind IN ('identity', 'credit')", name=op.f("ck_customer_verifications_kind")
        ),
        sa.CheckConstraint(
            "outcome IN ('passed', 'failed', 'referred')",
            name=op.f("ck_customer_verifications_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_verifications_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_verifications")),
    )
    op.create_index(
        "ix_customer_verifications_customer_id_id",
        "customer_verifications",
        ["customer_id", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customer_verifications_customer_id_id", table_name="customer_verifications")
    op.drop_table("customer_verifications")
