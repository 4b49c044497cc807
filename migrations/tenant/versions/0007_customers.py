"""customers: buyers, contacts, search, dedupe

Search uses a generated tsvector (GIN) and a trigram index on the generated sort name.
The trigram operator class lives in `public` (migrations/shared/versions/0002_pg_trgm.py
creates pg_trgm there; a tenant role cannot create extensions) and is named with its
schema, as tenant search paths leave `public` out.

Revision ID: 0007_customers
Revises: 0006_agents
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.columns import audit_columns_v1

revision = "0007_customers"
down_revision = "0006_agents"
branch_labels = None
depends_on = None

# Frozen copies of core.customers.models.SORT_NAME_SQL / SEARCH_VECTOR_SQL as of this
# revision (tests/customers/test_schema.py checks the database matches the models).
SORT_NAME_SQL = (
    "lower(btrim(coalesce(company_name, "
    "coalesce(first_name, '') || ' ' || coalesce(last_name, ''))))"
)
SEARCH_VECTOR_SQL = (
    "to_tsvector('simple'::regconfig, "
    "coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || "
    "coalesce(company_name, '') || ' ' || "
    "coalesce(translate(email, '@.+-_', '     '), '') || ' ' || "
    "coalesce(regexp_replace(phone, '[^0-9]', '', 'g'), '') || ' ' || "
    "coalesce(registration_number, ''))"
)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("date_of_birth", sa.Text(), nullable=True),
        sa.Column("company_name", sa.String(length=200), nullable=True),
        sa.Column("registration_number", sa.String(length=50), nullable=True),
        sa.Column("national_id", sa.Text(), nullable=True),
        sa.Column("national_id_index", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("preferred_channel", sa.String(length=10), nullable=True),
        sa.Column("address", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("marketing_consent", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kyc_status", sa.String(length=20), server_default="not_started", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("tags", sa.ARRAY(sa.String(length=50)), server_default="{}", nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.Column(
            "sort_name", sa.Text(), sa.Computed(SORT_NAME_SQL, persisted=True), nullable=False
        ),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_VECTOR_SQL, persisted=True),
            nullable=False,
        ),
        *audit_columns_v1(),
        sa.CheckConstraint("kind IN ('person', 'company')", name=op.f("ck_customers_kind")),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'merged')", name=op.f("ck_customers_status")
        ),
        sa.CheckConstraint(
            "kyc_status IN ('not_started', 'pending', 'verified', 'failed')",
            name=op.f("ck_customers_kyc_status"),
        ),
        sa.CheckConstraint(
            "preferred_channel IS NULL OR preferred_channel IN ('email', 'phone', 'sms', 'post')",
            name=op.f("ck_customers_channel"),
        ),
        sa.CheckConstraint(
            "(status = 'merged') = (merged_into IS NOT NULL)",
            name=op.f("ck_customers_merged_into"),
        ),
        sa.CheckConstraint(
            "merged_into IS DISTINCT FROM id", name=op.f("ck_customers_not_merged_into_self")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_customers_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into"],
            ["customers.id"],
            name=op.f("fk_customers_merged_into_customers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index("ix_customers_sort_name_id", "customers", ["sort_name", "id"])
    op.create_index("ix_customers_agent_sort_name_id", "customers", ["agent_id", "sort_name", "id"])
    op.create_index(
        "ix_customers_search_vector", "customers", ["search_vector"], postgresql_using="gin"
    )
    op.create_index(
        "ix_customers_sort_name_trgm",
        "customers",
        ["sort_name"],
        postgresql_using="gin",
        postgresql_ops={"sort_name": "public.gin_trgm_ops"},
    )
    op.create_index("ix_customers_lower_email", "customers", [sa.text("lower(email)")])
    op.create_index("ix_customers_phone", "customers", ["phone"])
    op.create_index("ix_customers_registration_number", "customers", ["registration_number"])
    op.create_index("ix_customers_tags", "customers", ["tags"], postgresql_using="gin")
    op.create_index(op.f("ix_customers_merged_into"), "customers", ["merged_into"])
    op.create_index(op.f("ix_customers_national_id_index"), "customers", ["national_id_index"])

    op.create_table(
        "customer_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        *audit_columns_v1(),
        sa.CheckConstraint(
            "(email IS NULL) <> (phone IS NULL)", name=op.f("ck_customer_contacts_email_or_phone")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_contacts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_contacts")),
    )
    op.create_index(op.f("ix_customer_contacts_customer_id"), "customer_contacts", ["customer_id"])


def downgrade() -> None:
    op.drop_table("customer_contacts")
    op.drop_table("customers")
