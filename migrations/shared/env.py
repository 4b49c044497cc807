"""Alembic environment for the `public` schema."""

from alembic import context

from tenants.models import PublicBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=PublicBase.metadata,
    version_table="shared_alembic_version",
    version_table_schema="public",
    include_schemas=False,
)
with context.begin_transaction():
    context.run_migrations()
