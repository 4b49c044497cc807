"""audit log

The append-only, hash-chained audit log of one tenant (docs/audit.md).

This runs as the tenant's role, which therefore owns these objects. An owner's own
privileges can be revoked (and are, below) but it may grant them back to itself, and
it may drop or disable triggers: the triggers stop the application, not the schema
owner or a superuser. The hash chain makes their edits detectable.

Revision ID: 0002_audit
Revises: 0001_tenant
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_audit"
down_revision = "0001_tenant"
branch_labels = None
depends_on = None

GENESIS = "0" * 64

# `SET search_path FROM CURRENT` pins the functions to this tenant's schema (the
# migration's search_path), so they behave the same whoever fires them.
CHAIN_FUNCTION = """
CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    head_hash text;
BEGIN
    -- The row lock on the one-row head serialises appends: a second transaction
    -- waits here until the first commits or rolls back, then reads the new head.
    SELECT last_hash INTO head_hash FROM audit_head WHERE singleton FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit_head has no row: the audit chain cannot be extended';
    END IF;
    -- Drawn under the lock, so id order is chain order; the caller cannot choose
    -- id, time or hashes.
    NEW.id := nextval('audit_log_id_seq');
    NEW.at := clock_timestamp();
    NEW.prev_hash := head_hash;
    NEW.hash := encode(sha256(convert_to(json_build_array(
        'pb-audit-v1',
        NEW.id::text,
        to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        NEW.actor,
        NEW.actor_ip,
        NEW.request_id,
        NEW.action,
        NEW.entity,
        NEW.entity_id,
        NEW.changes::text,
        NEW.details::text,
        NEW.prev_hash
    )::text, 'UTF8')), 'hex');
    UPDATE audit_head
       SET last_id = NEW.id, last_hash = NEW.hash, entries = entries + 1
     WHERE singleton;
    RETURN NEW;
END
$$
"""

REFUSE_FUNCTION = """
CREATE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

# The head moves only from inside audit_log_chain (trigger depth 2) and one entry at
# a time, so rewinding it takes disabling this trigger first.
HEAD_GUARD_FUNCTION = """
CREATE FUNCTION audit_head_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF pg_trigger_depth() < 2 OR NEW.entries <> OLD.entries + 1 THEN
        RAISE EXCEPTION 'audit_head moves only by appending to audit_log'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE SEQUENCE audit_log_id_seq AS bigint")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_ip", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=True),
        sa.Column("entity_id", sa.Text(), nullable=True),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "changes IS NULL OR jsonb_typeof(changes) = 'object'",
            name=op.f("ck_audit_log_changes_object"),
        ),
        sa.CheckConstraint(
            "details IS NULL OR jsonb_typeof(details) = 'object'",
            name=op.f("ck_audit_log_details_object"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        # Two rows claiming the same predecessor would be a fork: impossible by schema.
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_log_prev_hash")),
    )
    op.execute("ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id")
    # The audit screen filters by these and pages by id.
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_entity_id", "audit_log", ["entity", "entity_id", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    op.create_table(
        "audit_head",
        sa.Column("singleton", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_hash", sa.Text(), nullable=False),
        sa.Column("entries", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("singleton", name=op.f("ck_audit_head_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_audit_head")),
    )
    op.execute(f"INSERT INTO audit_head (last_hash) VALUES ('{GENESIS}')")

    op.execute(CHAIN_FUNCTION)
    op.execute(REFUSE_FUNCTION)
    op.execute(HEAD_GUARD_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_chain()"
    )
    # Statement-level, so even an UPDATE or DELETE matching no row is refused.
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_head_keep BEFORE INSERT OR DELETE OR TRUNCATE ON audit_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_head_guard BEFORE UPDATE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_guard()"
    )
    # The application runs as this same role (CURRENT_USER here): it keeps INSERT and
    # SELECT on the log and SELECT/UPDATE on the head (the chain trigger needs it).
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER")
    op.execute("REVOKE INSERT, DELETE, TRUNCATE ON audit_head FROM CURRENT_USER")


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION audit_head_guard()")
    op.execute("DROP FUNCTION audit_refuse_change()")
    op.execute("DROP FUNCTION audit_log_chain()")
