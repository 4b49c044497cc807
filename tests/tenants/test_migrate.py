"""`powerbuyer tenants migrate [--jobs N] [--check] [--tenant SLUG]`.

A real extra migration runs against real tenant schemas: the tenant stream is copied
into tmp_path with one more revision, and POWERBUYER_TENANT_MIGRATIONS points the
runner at the copy. The real stream is never changed. Only tenants these tests create
are migrated (`--tenant`), so the session's other tenants stay at the real head.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import text

from core.db import scope_connection
from core.tenancy import Tenant
from tenants import migrations, provisioning
from tenants.admin import admin_engine
from tests.conftest import make_tenant

EXTRA_REVISION = '''"""nickname (test only)"""

import os
import time

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("nicknames_seen", sa.Column("id", sa.Integer, primary_key=True))
    # Outside the transaction on purpose: which process ran each tenant, failed or not.
    with open(os.path.join(os.path.dirname(__file__), "..", "pids.log"), "a") as log:
        log.write(f"{{os.getpid()}}\\n")
    # Long enough that a pool of two processes shares out three tenants.
    time.sleep(0.4)
    op.add_column("users", sa.Column("nickname", sa.String(80)))


def downgrade() -> None:
    op.drop_column("users", "nickname")
    op.drop_table("nicknames_seen")
'''


def extra_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the tenant stream at a copy with one more revision; return the new head."""
    down = migrations.head("tenant")
    stream = tmp_path / "tenant"
    shutil.copytree(
        migrations.ROOT / "tenant", stream, ignore=shutil.ignore_patterns("__pycache__")
    )
    revision = f"test_nickname_{tmp_path.name[-12:]}"
    (stream / "versions" / f"{revision}.py").write_text(
        EXTRA_REVISION.format(revision=revision, down=down)
    )
    monkeypatch.setenv(migrations.TENANT_STREAM_ENV, str(stream))
    assert migrations.head("tenant") == revision
    return revision


@pytest.fixture
def make(app: Flask) -> Iterator[Callable[[str], Tenant]]:
    """Tenants provisioned (at the real head) for one test, deleted afterwards."""
    made: list[Tenant] = []

    def create(prefix: str) -> Tenant:
        made.append(make_tenant(app, f"{prefix}-{os.urandom(5).hex()}"))
        return made[-1]

    yield create
    for tenant in made:
        provisioning.delete_tenant(admin_engine(app), tenant.slug)


def migrate(app: Flask, *args: str, tenants: list[Tenant] = ()) -> Result:  # type: ignore[assignment]
    only = [item for t in tenants for item in ("--tenant", t.slug)]
    return app.test_cli_runner().invoke(args=["tenants", "migrate", *args, *only])


def revision(app: Flask, tenant: Tenant) -> str | None:
    with admin_engine(app).connect() as conn:
        return conn.scalar(text(f'SELECT version_num FROM "{tenant.schema}".alembic_version'))


def recorded(app: Flask, tenant: Tenant) -> tuple:
    with admin_engine(app).connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT status, revision, error, finished_at FROM public.tenant_migrations"
                    " WHERE tenant_id = :id"
                ),
                {"id": tenant.id},
            ).one()
        )


def in_schema(app: Flask, tenant: Tenant, sql: str) -> list[tuple]:
    """Run `sql` as the tenant's own role, in its schema, and commit."""
    with admin_engine(app).begin() as conn:
        scope_connection(conn, tenant)
        result = conn.execute(text(sql))
        return [tuple(row) for row in result] if result.returns_rows else []


def test_a_failing_tenant_is_rolled_back_alone_named_and_resumed(app, make, tmp_path, monkeypatch):
    good = [make("mig"), make("mig")]
    bad = make("mig")
    old_head = migrations.head("tenant")
    # The column the new revision adds already exists in one tenant, so its ADD COLUMN
    # fails after the same revision already created a table there.
    in_schema(app, bad, "ALTER TABLE users ADD COLUMN nickname text")
    new_head = extra_stream(tmp_path, monkeypatch)
    everyone = [*good, bad]

    check = migrate(app, "--check", tenants=everyone)
    assert check.exit_code == 1
    assert "3 of 3 tenant schema(s) not at head" in check.output

    result = migrate(app, "--jobs", "2", tenants=everyone)
    assert result.exit_code == 1
    assert f"migration failed for {bad.slug};" in result.output
    assert f"{bad.slug}: FAILED: " in result.output
    assert "DuplicateColumn" in result.output
    for tenant in good:
        assert f"{tenant.slug}: at {new_head}" in result.output
        assert revision(app, tenant) == new_head
        assert recorded(app, tenant)[:3] == ("done", new_head, None)
        assert in_schema(app, tenant, "SELECT nickname FROM users") == [(None,)]
    # One transaction per tenant: the failed tenant kept nothing of the revision.
    assert revision(app, bad) == old_head
    status, kept_revision, error, _ = recorded(app, bad)
    assert (status, kept_revision) == ("failed", old_head)
    assert 'column "nickname" of relation "users" already exists' in error
    with admin_engine(app).connect() as conn:
        assert (
            conn.scalar(text("SELECT to_regclass(:t)"), {"t": f"{bad.schema}.nicknames_seen"})
            is None
        )
    # Parallel processes: two workers shared the three tenants; none ran in this one.
    pids = set((tmp_path / "tenant" / "pids.log").read_text().split())
    assert len(pids) == 2 and str(os.getpid()) not in pids

    listing = app.test_cli_runner().invoke(args=["tenants", "list"]).output
    bad_row = next(line for line in listing.splitlines() if line.startswith(bad.slug))
    assert bad_row.split()[3:5] == [old_head, "failed"]

    check = migrate(app, "--check", tenants=everyone)
    assert check.exit_code == 1
    assert f"{bad.slug}: at {old_head}, head is {new_head}" in check.output
    assert "1 of 3 tenant schema(s) not at head" in check.output

    # Fix the cause and run again: only the failed tenant is migrated.
    in_schema(app, bad, "ALTER TABLE users DROP COLUMN nickname")
    finished = {t.slug: recorded(app, t)[3] for t in good}
    result = migrate(app, "--jobs", "2", tenants=everyone)
    assert result.exit_code == 0, result.output
    assert f"{bad.slug}: at {new_head}" in result.output
    assert "1 tenant(s) migrated, 2 already at" in result.output
    for tenant in good:
        assert tenant.slug not in result.output
        assert recorded(app, tenant)[3] == finished[tenant.slug]
    assert revision(app, bad) == new_head
    assert recorded(app, bad)[:3] == ("done", new_head, None)

    check = migrate(app, "--check", tenants=everyone)
    assert check.exit_code == 0, check.output
    assert f"all 3 tenant schema(s) at {new_head}" in check.output


def test_serial_run_and_a_schema_with_no_version_table(app, make, tmp_path, monkeypatch):
    tenant, empty = make("mig"), make("mig")
    in_schema(app, empty, "DROP TABLE alembic_version")
    new_head = extra_stream(tmp_path, monkeypatch)

    check = migrate(app, "--check", tenants=[tenant, empty])
    assert check.exit_code == 1
    assert f"{empty.slug}: at nothing, head is {new_head}" in check.output

    result = migrate(app, "--jobs", "1", tenants=[tenant])
    assert result.exit_code == 0, result.output
    assert revision(app, tenant) == new_head
    assert migrate(app, "--check", tenants=[tenant]).exit_code == 0


def test_every_session_tenant_is_at_the_real_head(app, alpha, beta):
    """With no --tenant, every tenant is checked; the session's are at the real head."""
    assert os.environ.get(migrations.TENANT_STREAM_ENV) is None
    check = migrate(app, "--check")
    assert check.exit_code == 0, check.output
    assert f"tenant schema(s) at {migrations.head('tenant')}" in check.output

    result = migrate(app)
    assert result.exit_code == 0, result.output
    assert "0 tenant(s) migrated" in result.output
    assert revision(app, alpha) == revision(app, beta) == migrations.head("tenant")


def test_an_unknown_tenant_is_refused(app, alpha):
    result = migrate(app, "--tenant", "no-such-tenant", tenants=[alpha])
    assert result.exit_code == 1
    assert "no tenant with slug no-such-tenant" in result.output
    assert "alpha: at" not in result.output
