"""customers: a blind index of a person's name and date of birth

`identity_index` (core.customers.models.identity_value) lets the duplicate checks find
"same name, same date of birth" with one indexed equality; they used to decrypt the
date of birth of every customer of the same name (bench/customers.py: half of an
import's time at 1,000,000 customers).

No backfill here: the value is an HMAC under the tenant's index key, which is wrapped
by the master key, and a migration has neither (it gets a connection, never the
application's configuration). The application fills it: the periodic job
`customers.identity_backfill`, and every create or change of a name or date of birth.
Until a row has one, the duplicate checks find it by its name through
`ix_customers_unindexed_names` (those rows only, so it empties as they are filled)
and compare its decrypted date of birth, as before.

Revision ID: 0012_customer_identity_index
Revises: 0011_customer_name_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_customer_identity_index"
down_revision = "0011_customer_name_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("identity_index", sa.String(length=64), nullable=True))
    op.create_index("ix_customers_identity_index", "customers", ["identity_index"])
    op.create_index(
        "ix_customers_unindexed_names",
        "customers",
        [sa.text("lower(first_name)"), sa.text("lower(last_name)")],
        postgresql_where=sa.text("identity_index IS NULL AND date_of_birth IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_customers_unindexed_names", table_name="customers")
    op.drop_index("ix_customers_identity_index", table_name="customers")
    op.drop_column("customers", "identity_index")
