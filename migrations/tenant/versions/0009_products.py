"""products and policies: product versions, rate tables, quotes, policies and their
versions, renewal offers, number counters

Revision ID: 0009_products
Revises: 0008_verifications
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from migrations.columns import audit_columns_v1

revision = "0009_products"
down_revision = "0008_verifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "number_counters",
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "period", name=op.f("pk_number_counters")),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_code", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("grace_days", JSONB(), nullable=False),
        sa.Column("revival_years", sa.Integer(), nullable=True),
        *audit_columns_v1(),
        sa.CheckConstraint(
            "revival_years IS NULL OR revival_years >= 0", name=op.f("ck_products_revival_years")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("line_code", name=op.f("uq_products_line_code")),
    )
    op.create_table(
        "rate_tables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("line_code", sa.String(length=60), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("source_filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        *audit_columns_v1(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_tables")),
        sa.UniqueConstraint("line_code", "version", name=op.f("uq_rate_tables_line_code")),
    )
    op.create_table(
        "product_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("rate_table_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        *audit_columns_v1(),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_versions_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rate_table_id"],
            ["rate_tables.id"],
            name=op.f("fk_product_versions_rate_table_id_rate_tables"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_versions")),
        sa.UniqueConstraint(
            "product_id", "effective_from", name=op.f("uq_product_versions_product_id")
        ),
    )
    op.create_index(
        op.f("ix_product_versions_product_id"), "product_versions", ["product_id"], unique=False
    )
    op.create_index(
        op.f("ix_product_versions_rate_table_id"),
        "product_versions",
        ["rate_table_id"],
        unique=False,
    )
    op.create_table(
        "quotes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("product_version_id", sa.Integer(), nullable=False),
        sa.Column("line_code", sa.String(length=60), nullable=False),
        sa.Column("rate_table_version", sa.String(length=80), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("risk", JSONB(), nullable=False),
        sa.Column("premium", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("trace", JSONB(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="open", nullable=False),
        *audit_columns_v1(),
        sa.CheckConstraint("status IN ('open', 'bound')", name=op.f("ck_quotes_status")),
        sa.CheckConstraint("premium >= 0", name=op.f("ck_quotes_premium_not_negative")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_quotes_agent_id_agents"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_quotes_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_quotes_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_version_id"],
            ["product_versions.id"],
            name=op.f("fk_quotes_product_version_id_product_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
    )
    op.create_index("ix_quotes_agent_id_id", "quotes", ["agent_id", "id"], unique=False)
    op.create_index(op.f("ix_quotes_customer_id"), "quotes", ["customer_id"], unique=False)
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=60), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quote_id", sa.Integer(), nullable=True),
        sa.Column("renewal_of_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column(
            "payment_frequency", sa.String(length=12), server_default="annual", nullable=False
        ),
        sa.Column("premium", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("declarations", JSONB(), server_default="{}", nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_on", sa.Date(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        *audit_columns_v1(),
        sa.CheckConstraint(
            "payment_frequency IN ('annual', 'half_yearly', 'quarterly', 'monthly')",
            name=op.f("ck_policies_payment_frequency"),
        ),
        sa.CheckConstraint(
            "state = 'bound' OR number IS NOT NULL", name=op.f("ck_policies_issued_has_number")
        ),
        sa.CheckConstraint(
            "state IN ('bound', 'in_force', 'in_grace', 'lapsed', 'expired', 'cancelled')",
            name=op.f("ck_policies_state"),
        ),
        sa.CheckConstraint("end_date > start_date", name=op.f("ck_policies_term")),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_policies_agent_id_agents"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_policies_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_policies_product_id_products"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["quote_id"],
            ["quotes.id"],
            name=op.f("fk_policies_quote_id_quotes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["renewal_of_id"],
            ["policies.id"],
            name=op.f("fk_policies_renewal_of_id_policies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("number", name=op.f("uq_policies_number")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_policies_quote_id")),
        sa.UniqueConstraint("renewal_of_id", name=op.f("uq_policies_renewal_of_id")),
    )
    op.create_index("ix_policies_agent_id_id", "policies", ["agent_id", "id"], unique=False)
    op.create_index(op.f("ix_policies_customer_id"), "policies", ["customer_id"], unique=False)
    op.create_index("ix_policies_end_date_state", "policies", ["end_date", "state"], unique=False)
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=15), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("risk", JSONB(), nullable=False),
        sa.Column("premium", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("adjustment", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("trace", JSONB(), nullable=False),
        sa.Column("product_version_id", sa.Integer(), nullable=False),
        sa.Column("rate_table_version", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        *audit_columns_v1(),
        sa.CheckConstraint(
            "kind IN ('new_business', 'endorsement', 'cancellation')",
            name=op.f("ck_policy_versions_kind"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_policy_versions_version_positive")),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
            name=op.f("fk_policy_versions_policy_id_policies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_version_id"],
            ["product_versions.id"],
            name=op.f("fk_policy_versions_product_version_id_product_versions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("policy_id", "version", name=op.f("uq_policy_versions_policy_id")),
    )
    op.create_table(
        "renewal_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("risk", JSONB(), nullable=False),
        sa.Column("premium", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("previous_premium", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("trace", JSONB(), nullable=False),
        sa.Column("explanation", JSONB(), nullable=False),
        sa.Column("product_version_id", sa.Integer(), nullable=False),
        sa.Column("rate_table_version", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="offered", nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("renewed_policy_id", sa.Integer(), nullable=True),
        *audit_columns_v1(),
        sa.CheckConstraint(
            "status IN ('offered', 'accepted', 'declined', 'withdrawn')",
            name=op.f("ck_renewal_offers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
            name=op.f("fk_renewal_offers_policy_id_policies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_version_id"],
            ["product_versions.id"],
            name=op.f("fk_renewal_offers_product_version_id_product_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["renewed_policy_id"],
            ["policies.id"],
            name=op.f("fk_renewal_offers_renewed_policy_id_policies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renewal_offers")),
        sa.UniqueConstraint("policy_id", "start_date", name=op.f("uq_renewal_offers_policy_id")),
    )
    op.create_index(
        "ix_renewal_offers_status_start_date",
        "renewal_offers",
        ["status", "start_date"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_renewal_offers_status_start_date", table_name="renewal_offers")
    op.drop_table("renewal_offers")
    op.drop_table("policy_versions")
    op.drop_index("ix_policies_end_date_state", table_name="policies")
    op.drop_index(op.f("ix_policies_customer_id"), table_name="policies")
    op.drop_index("ix_policies_agent_id_id", table_name="policies")
    op.drop_table("policies")
    op.drop_index(op.f("ix_quotes_customer_id"), table_name="quotes")
    op.drop_index("ix_quotes_agent_id_id", table_name="quotes")
    op.drop_table("quotes")
    op.drop_index(op.f("ix_product_versions_rate_table_id"), table_name="product_versions")
    op.drop_index(op.f("ix_product_versions_product_id"), table_name="product_versions")
    op.drop_table("product_versions")
    op.drop_table("rate_tables")
    op.drop_table("products")
    op.drop_table("number_counters")
