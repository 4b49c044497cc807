"""Column sets that several tenant migrations create.

Frozen: a migration must create the same schema whenever it runs, so nothing here is
ever changed. A different set of audit columns would be a new function (and a
migration that moves tables to it), never an edit of this one.
"""

import sqlalchemy as sa


def audit_columns_v1() -> list[sa.Column]:
    """`core.audit.AuditMixin` as of revision 0003: who and when, and the soft delete."""
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(), nullable=True),
        sa.Column("updated_by", sa.String(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="true", nullable=False),
    ]
