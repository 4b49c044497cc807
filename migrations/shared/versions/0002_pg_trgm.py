"""pg_trgm in schema public

Trigram search on customers' names (migrations/tenant/versions/0007_customers.py).
Extensions are database-wide and need a privileged role; the tenant stream runs as
each tenant's role, which cannot create one. So the shared stream, run once by the
admin connection, creates it here, in `public`, and tenant schemas name its objects
schema-qualified (`public.gin_trgm_ops`, `public.similarity`): their search_path
leaves `public` out.

Revision ID: 0002_pg_trgm
Revises: 0001_shared
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_pg_trgm"
down_revision: str | Sequence[str] | None = "0001_shared"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")


def downgrade() -> None:
    # Tenant indexes depend on it: dropping it means downgrading the tenants first.
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
