"""Tenant operations at 1, 100 and 1,000 tenants: a benchmark, not a test.

Measures, for each N:
  - provisioning time per tenant (what `powerbuyer tenants create` does: hash the
    admin password, then role, schema, tables, seed and registry row in one transaction);
  - `powerbuyer tenants migrate` for one add-column migration over N tenants;
  - `powerbuyer tenants migrate --check` over N tenants;
and prints time(N) / (N x time(1)) for each, with PASS/FAIL against the targets:
provisioning under 1 s per tenant, --check at 1,000 tenants under 5 s, ratio <= 1.2.

Run:  python bench/tenants.py [--sizes 1,100,1000] [--jobs N] [--fresh]
Database: BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/powerbuyer_bench
(a superuser URL; the database is created when missing). Tenants already provisioned
there are reused, so a second run, or a run interrupted while counting up, only
provisions what is missing; each tenant's provisioning time is kept in the bench
database's own `bench` schema. The add-column migration comes from a temporary copy
of the tenant stream (POWERBUYER_TENANT_MIGRATIONS), never from the real one, and is
undone after each measurement. Exits 0 whatever the figures: it reports, it does not
judge the build.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/tenants.py`, Python puts bench/ first on sys.path, where this
# very file would shadow the `tenants` package it measures.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from flask import Flask  # noqa: E402
from flask_security import hash_password  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core import dbroles  # noqa: E402
from core.app import create_app  # noqa: E402
from tenants import migrations, provisioning  # noqa: E402
from tenants.admin import admin_engine  # noqa: E402
from tenants.cli import upgrade_public  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/powerbuyer_bench"
PASSWORD = "bench password, not secret"
COLUMN = "bench_note"
PROVISION_TARGET = 1.0
CHECK_TARGET = 5.0
RATIO_TARGET = 1.2

REVISION = '''"""bench: add one column"""

import sqlalchemy as sa
from alembic import op

revision = "bench_add_column"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("{column}", sa.Text()))


def downgrade() -> None:
    op.drop_column("users", "{column}")
'''


def slug(number: int) -> str:
    return f"bench-{number:05d}"


def database(url: str, fresh: bool) -> str:
    """Create the bench database (drop it and its roles first with --fresh)."""
    parsed = make_url(url).set(drivername="postgresql")
    name = parsed.database
    assert name, "BENCH_DATABASE_URL must name a database"
    if fresh:
        dbroles.recreate_database(url)
        return parsed.render_as_string(hide_password=False)
    maintenance = parsed.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return parsed.render_as_string(hide_password=False)


def bench_app(url: str) -> Flask:
    name = make_url(url).database
    app = create_app(
        {
            "DATABASE_URL": url,
            "DATABASE_ADMIN_URL": None,
            # Never contacted: the bench enqueues nothing.
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            # Roles are cluster-wide; the prefix keeps the bench's apart from the rest.
            "DB_ROLE_PREFIX": f"{name}__",
            "APP_DB_ROLE": f"{name}__app",
            "COMPONENTS": ("tenants",),
        }
    )
    upgrade_public(app)
    with admin_engine(app).begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS bench"))
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench.provisioning"
                " (slug text PRIMARY KEY, seconds double precision NOT NULL)"
            )
        )
    return app


def provision_up_to(app: Flask, count: int) -> list[float]:
    """Make sure bench-00001..count exist; return their provisioning times in order."""
    engine = admin_engine(app)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT slug, seconds FROM bench.provisioning"))
        timed = {name: seconds for name, seconds in rows}
        existing = set(conn.scalars(text("SELECT slug FROM public.tenants")))
    for number in range(1, count + 1):
        name = slug(number)
        if name in timed and name in existing:
            continue
        if name in existing:  # provisioned, but its time was lost: do it again
            provisioning.delete_tenant(engine, name)
        started = time.perf_counter()
        with app.app_context():
            provisioning.create_tenant(
                engine,
                provisioning.NewTenant(
                    name, f"Bench {number}", f"admin@{name}.example.com", hash_password(PASSWORD)
                ),
                app_role=app.config["APP_DB_ROLE"],
                role_prefix=app.config["DB_ROLE_PREFIX"],
            )
        timed[name] = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO bench.provisioning VALUES (:s, :t)"
                    " ON CONFLICT (slug) DO UPDATE SET seconds = EXCLUDED.seconds"
                ),
                {"s": name, "t": timed[name]},
            )
        if number % 100 == 0:
            print(f"  provisioned {number}/{count}", file=sys.stderr, flush=True)
    return [timed[slug(n)] for n in range(1, count + 1)]


@contextmanager
def extra_stream() -> Iterator[str]:
    """The tenant stream plus one add-column revision, for the duration of the block."""
    down = migrations.head("tenant")
    with tempfile.TemporaryDirectory(prefix="pb-bench-stream-") as tmp:
        stream = Path(tmp) / "tenant"
        shutil.copytree(
            migrations.ROOT / "tenant", stream, ignore=shutil.ignore_patterns("__pycache__")
        )
        (stream / "versions" / "bench_add_column.py").write_text(
            REVISION.format(down=down, column=COLUMN)
        )
        os.environ[migrations.TENANT_STREAM_ENV] = str(stream)
        try:
            yield down
        finally:
            del os.environ[migrations.TENANT_STREAM_ENV]


def undo_extra_revision(app: Flask, down: str) -> None:
    """Put every bench tenant back at the real head (what the revision's downgrade does)."""
    with admin_engine(app).begin() as conn:
        for schema in conn.scalars(
            text(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_attribute a ON a.attrelid = c.oid"
                " WHERE c.relname = 'users' AND a.attname = :column AND NOT a.attisdropped"
            ),
            {"column": COLUMN},
        ).all():
            conn.execute(text(f'ALTER TABLE "{schema}".users DROP COLUMN {COLUMN}'))
            conn.execute(
                text(f'UPDATE "{schema}".alembic_version SET version_num = :v'), {"v": down}
            )
        conn.execute(
            text("UPDATE public.tenant_migrations SET revision = :v WHERE revision <> :v"),
            {"v": down},
        )


def run_cli(app: Flask, args: list[str]) -> tuple[float, int, str]:
    runner = app.test_cli_runner()
    started = time.perf_counter()
    result = runner.invoke(args=["tenants", "migrate", *args])
    return time.perf_counter() - started, result.exit_code, result.output


@dataclass
class Row:
    n: int
    provision_total: float
    provision_mean: float
    provision_max: float
    migrate: float
    check: float


def measure(app: Flask, n: int, jobs: int, provision_times: list[float]) -> Row:
    with admin_engine(app).connect() as conn:
        total = conn.scalar(text("SELECT count(*) FROM public.tenants"))
    # With more tenants in the database than N, name the N to keep the run to them.
    only = [] if total == n else [x for i in range(1, n + 1) for x in ("--tenant", slug(i))]
    times = provision_times[:n]
    with extra_stream() as down:
        try:
            migrate_s, code, output = run_cli(app, ["--jobs", str(jobs), *only])
            if code != 0:
                raise SystemExit(f"tenants migrate failed at N={n}:\n{output[-2000:]}")
            checks = []
            for _ in range(3):
                check_s, code, output = run_cli(app, ["--check", *only])
                if code != 0:
                    raise SystemExit(f"tenants migrate --check failed at N={n}:\n{output}")
                checks.append(check_s)
        finally:
            undo_extra_revision(app, down)
    return Row(
        n=n,
        provision_total=sum(times),
        provision_mean=statistics.fmean(times),
        provision_max=max(times),
        migrate=migrate_s,
        check=statistics.median(checks),
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(rows: list[Row], jobs: int) -> None:
    first = rows[0]
    assert first.n == 1, "ratios need N=1 among the sizes"

    def ratio(total: float, base: float, n: int) -> float:
        return total / (n * base)

    print()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"tenant operations ({jobs} migration processes, {os.cpu_count()} CPUs, "
        f"load average now {load})"
    )
    header = (
        f"{'N':>5} | {'provision s/tenant':>18} {'max s':>7} {'ratio':>6} | "
        f"{'migrate s':>9} {'ratio':>6} | {'check s':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.n:>5} | {row.provision_mean:>18.3f} {row.provision_max:>7.3f} "
            f"{ratio(row.provision_total, first.provision_total, row.n):>6.2f} | "
            f"{row.migrate:>9.3f} {ratio(row.migrate, first.migrate, row.n):>6.3f} | "
            f"{row.check:>8.3f} {ratio(row.check, first.check, row.n):>6.4f}"
        )
    print()
    worst = max(rows, key=lambda r: r.provision_mean)
    print(
        f"{verdict(worst.provision_mean < PROVISION_TARGET)}  provisioning under "
        f"{PROVISION_TARGET:g} s per tenant "
        f"(worst mean {worst.provision_mean:.3f} s at N={worst.n})"
    )
    big = [r for r in rows if r.n >= 1000]
    if big:
        print(
            f"{verdict(big[0].check < CHECK_TARGET)}  --check at {big[0].n} tenants under "
            f"{CHECK_TARGET:g} s ({big[0].check:.3f} s)"
        )
    else:
        print("----  --check at 1000 tenants: not measured (add 1000 to --sizes)")
    for label, value in (
        ("provisioning", lambda r: ratio(r.provision_total, first.provision_total, r.n)),
        ("migrate", lambda r: ratio(r.migrate, first.migrate, r.n)),
        ("migrate --check", lambda r: ratio(r.check, first.check, r.n)),
    ):
        worst_ratio = max(value(r) for r in rows)
        print(
            f"{verdict(worst_ratio <= RATIO_TARGET)}  {label} time(N) / (N x time(1)) at most "
            f"{RATIO_TARGET:g} (worst {worst_ratio:.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000", help="comma-separated N (with 1)")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 2, help="tenants migrate --jobs"
    )
    parser.add_argument("--fresh", action="store_true", help="drop the bench database first")
    args = parser.parse_args()
    # Alembic logs each revision it runs; a thousand tenants would bury the table.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sizes = sorted({int(s) for s in args.sizes.split(",")})

    url = database(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL), args.fresh)
    app = bench_app(url)
    with app.app_context():
        # Warm the process up (argon2, Alembic's scripts) so time(1) is not a cold start.
        hash_password(PASSWORD)
        migrations.head("tenant")
    undo_extra_revision(app, migrations.head("tenant"))  # an interrupted earlier run

    rows = []
    for n in sizes:
        print(f"N={n}: provisioning", file=sys.stderr, flush=True)
        times = provision_up_to(app, n)
        print(f"N={n}: migrating", file=sys.stderr, flush=True)
        rows.append(measure(app, n, args.jobs, times))
    report(rows, args.jobs)


if __name__ == "__main__":
    main()
