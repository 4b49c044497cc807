"""personal data keys and retention

`data_keys` holds the tenant's wrapped data keys (core/security/crypto.py); a trigger
refuses to delete one, because every value written under a deleted key is lost (the
schema owner can still disable it: this guards against mistakes, not the owner).
`retention_policies` holds the tenant's retention rules (core/gdpr.py).

Revision ID: 0005_personal_data
Revises: 0004_api_tokens
"""

import sqlalchemy as sa
from alembic import op

from migrations.columns import audit_columns_v1

revision = "0005_personal_data"
down_revision = "0004_api_tokens"
branch_labels = None
depends_on = None

KEEP_KEYS_FUNCTION = """
CREATE FUNCTION data_keys_refuse_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION 'data keys are never deleted: values written under them would be lost'
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("master_kid", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("purpose IN ('data', 'index')", name=op.f("ck_data_keys_purpose")),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f("ck_data_keys_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
    )
    op.create_index(
        "uq_data_keys_active_purpose",
        "data_keys",
        ["purpose"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.execute(KEEP_KEYS_FUNCTION)
    op.execute(
        "CREATE TRIGGER data_keys_keep BEFORE DELETE ON data_keys "
        "FOR EACH ROW EXECUTE FUNCTION data_keys_refuse_delete()"
    )

    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=100), nullable=False),
        sa.Column("keep_days", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        *audit_columns_v1(),
        sa.CheckConstraint("keep_days > 0", name=op.f("ck_retention_policies_keep_days_positive")),
        sa.CheckConstraint(
            "action IN ('erase', 'delete')", name=op.f("ck_retention_policies_action")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policies")),
        sa.UniqueConstraint("entity", name=op.f("uq_retention_policies_entity")),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
    op.execute("DROP TRIGGER data_keys_keep ON data_keys")
    op.execute("DROP FUNCTION data_keys_refuse_delete()")
    op.drop_index("uq_data_keys_active_purpose", table_name="data_keys")
    op.drop_table("data_keys")
