"""customers: indexes on the surname, then first name (search)

A one-word search over a book of 1,000,000 ("smit") matched thousands of customers
spread over the name order (first name first); their first page cost a walk of
thousands of rows or a sort of all of them (bench/customers.py). Search now answers
names that begin with the query first, then surnames that do, each a range of an
index read in order: these two (the whole book, one agent's book).

Expression indexes, not a generated column: adding one would rewrite the table.

Revision ID: 0013_customer_surname_index
Revises: 0012_customer_identity_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_customer_surname_index"
down_revision = "0012_customer_identity_index"
branch_labels = None
depends_on = None

# A frozen copy of core.customers.models.SURNAME_FIRST_SQL as of this revision.
SURNAME_FIRST_SQL = "lower(btrim((coalesce(last_name, '') || ' ') || coalesce(first_name, '')))"


def upgrade() -> None:
    op.create_index(
        "ix_customers_surname_first_id", "customers", [sa.text(SURNAME_FIRST_SQL), "id"]
    )
    op.create_index(
        "ix_customers_agent_surname_first_id",
        "customers",
        ["agent_id", sa.text(SURNAME_FIRST_SQL), "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_customers_agent_surname_first_id", table_name="customers")
    op.drop_index("ix_customers_surname_first_id", table_name="customers")
