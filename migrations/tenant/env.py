"""Alembic environment for one tenant schema.

The caller hands over a connection whose transaction already runs as the tenant's
role with search_path set to its schema; nothing here names a schema.
"""

from alembic import context

import core.models  # noqa: F401  (registers every tenant table on Base.metadata)
from core.db import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="alembic_version",
    version_table_schema=config.attributes["schema"],
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
