"""Rating throughput: quotes through the API, and bulk re-rating of a book.

1. Quotes. Two WSGI apps, each served over HTTP/1.1 by werkzeug in a process of its
   own, driven by one client in this process over a keep-alive connection, in
   alternating rounds after a warm-up (so changes in machine load hit both alike):

     ours  `POST /api/v1/quotes` on a tenant's host with an agent's bearer token:
           authentication, tenant, reach of the customer, product version in force,
           the motor plugin's rating, the quote row with its trace, the audit entry;
     bare  a bare Flask + Flask-SQLAlchemy app whose one view inserts the posted JSON
           as one row and answers its id (same driver and engine options).

   Prints quotes/s and p50/p95 of each, and the ratio ours / bare (target >= 0.5).
   Beside it, the absolute rate of the whole quote -> bind -> issue flow (three API
   calls per policy), against the audited anchor of 192 quote-to-issue per second.

2. Bulk re-rating (`--policies`, default 100,000 in-force motor policies, loaded with
   set-based SQL): the book re-rated by the bulk job's work function
   (core.policies.rerating) against a per-policy ORM loop (load the policy and its
   current version, rate it, add the result, flush) timed on a sample of the same
   policies and scaled to the book. Target: bulk at least 20x faster.

Run:  python bench/rating.py [--requests 100] [--rounds 20] [--policies 100000]
      [--sample 2000] [--skip-quotes] [--skip-bulk]
Database: BENCH_RATING_DATABASE_URL (a superuser URL), default
postgresql://postgres@127.0.0.1:5432/powerbuyer_bench_rating, dropped and created
again each run with its roles (prefixed `<database>__`). Redis: REDIS_URL, default
redis://127.0.0.1:6379/12. Exits 0 whatever the figures: it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/rating.py`, Python puts bench/ first on sys.path, where
# bench/tenants.py would shadow the `tenants` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from flask import Flask, jsonify, request  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench import common  # noqa: E402
from bench.common import (  # noqa: E402
    Client,
    Figures,
    machine,
    merged,
    ours_config,
    provision_book,
    recreate_database,
    serve,
    start,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/powerbuyer_bench_rating"
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
SLUG = "bench"
SERVER_NAME = "localhost:5000"
HOST = f"{SLUG}.{SERVER_NAME}"
AGENT_EMAIL = f"agent@{SLUG}.example.com"
PASSWORD = "bench password, not a secret one"
LINE = "motor_private_car"
QUOTE_TARGET = 0.5
BULK_TARGET = 20.0
ANCHOR_QUOTE_TO_ISSUE = 192
START = date.today() + timedelta(days=7)
RISK = {
    "vehicle_value": "800000",
    "vehicle_age_months": 36,
    "engine_cc": 1197,
    "zone": "A",
    "claim_free_years": 3,
    "voluntary_deductible": 5000,
}


def database_url() -> str:
    return os.environ.get("BENCH_RATING_DATABASE_URL", DEFAULT_URL)


def redis_url() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS)


def ours_app() -> Flask:
    from core.app import create_app

    # Start-up warnings (no SMTP server configured) are not what this bench reports.
    logging.getLogger("plugins").setLevel(logging.ERROR)
    return create_app(ours_config(database_url(), redis_url(), SERVER_NAME))


def provision() -> int:
    """The bench tenant and an agent's book (bench.common.provision_book); the
    customer's id."""
    return provision_book(ours_app(), SLUG, AGENT_EMAIL, PASSWORD, LINE, HOST)


def bare_app() -> Flask:
    """A bare Flask + Flask-SQLAlchemy app: one view inserting one row; no auth, no tenant."""
    from sqlalchemy import text

    app, db = common.bare_app("bare", database_url())
    with app.app_context():
        db.session.execute(
            text(
                "CREATE TABLE IF NOT EXISTS public.bench_bare_quotes"
                " (id bigserial PRIMARY KEY, body jsonb NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        db.session.commit()
    insert = text("INSERT INTO public.bench_bare_quotes (body) VALUES (:body) RETURNING id")

    @app.post("/quotes")
    def quote() -> Any:
        body = request.get_data(as_text=True)
        row_id = db.session.execute(insert, {"body": body}).scalar_one()
        db.session.commit()
        return jsonify(id=row_id), 201

    return app


def token(port: int) -> str:
    client = Client(port, HOST)
    answer = client.json("POST", "/api/v1/auth/token", {"email": AGENT_EMAIL, "password": PASSWORD})
    return answer["access_token"]


def measure_quotes(args: argparse.Namespace, customer_id: int) -> None:
    ours, bare = start(__file__, "ours"), start(__file__, "bare")
    body = {"product": LINE, "customer_id": customer_id, "start_date": START.isoformat(),
            "risk": RISK}  # fmt: skip
    try:
        a = Client(ours.port, HOST, {"Authorization": f"Bearer {token(ours.port)}"})
        b = Client(bare.port, HOST)
        first = a.json("POST", "/api/v1/quotes", body, expect=201)
        if first["premium"] != "14391.12":
            raise RuntimeError(f"the reference quote is not 14391.12: {first['premium']}")
        print(f"ours answers 201 with premium {first['premium']} and {len(first['trace'])} steps")

        def run(client: Client, path: str, count: int) -> Figures:
            latencies = []
            clock = time.perf_counter
            started = clock()
            for _ in range(count):
                before = clock()
                status, payload = client.request("POST", path, body)
                latencies.append(clock() - before)
                if status != 201:
                    raise RuntimeError(f"{path}: {status} {payload[:200]!r}")
            return Figures(latencies, clock() - started)

        run(a, "/api/v1/quotes", args.warmup)
        run(b, "/quotes", args.warmup)
        runs: dict[str, list[Figures]] = {"ours": [], "bare": []}
        for _ in range(args.rounds):
            runs["ours"].append(run(a, "/api/v1/quotes", args.requests))
            runs["bare"].append(run(b, "/quotes", args.requests))
        flow = quote_to_issue(a, body, max(50, args.requests // 4))
    finally:
        ours.stop()
        bare.stop()
    print(
        f"\nPOST a quote: {args.rounds} alternating rounds of {args.requests} requests,"
        f" after {args.warmup} warm-up requests ({machine()})"
    )
    print(f"{'':5}| {'req/s':>6} | {'p50 ms':>6} | {'p95 ms':>6} | rounds: low / median / high")
    print("-" * 72)
    total = {name: merged(figures) for name, figures in runs.items()}
    for name, figures in runs.items():
        print(
            f"{name:5}| {total[name].rate:6.0f} | {total[name].percentile_ms(0.5):6.2f} |"
            f" {total[name].percentile_ms(0.95):6.2f} |"
            f" {common.spread([f.rate for f in figures])}"
        )
    ratio = total["ours"].rate / total["bare"].rate
    print(f"\nquotes/s (ours) / inserts/s (bare) = {ratio:.3f}")
    print(f"{'PASS' if ratio >= QUOTE_TARGET else 'FAIL'}  ratio at least {QUOTE_TARGET:.2f}")
    print(
        f"quote -> bind -> issue: {flow.rate:.0f} policies/s, p95 {flow.percentile_ms(0.95):.1f} ms"
        f" per policy (three API calls; the audited anchor is {ANCHOR_QUOTE_TO_ISSUE}/s)"
    )


def quote_to_issue(client: Client, body: dict[str, Any], count: int) -> Figures:
    """`count` policies, each quoted, bound and issued through the API in turn."""
    latencies = []
    clock = time.perf_counter
    started = clock()
    for _ in range(count):
        before = clock()
        quote = client.json("POST", "/api/v1/quotes", body, expect=201)
        policy = client.json("POST", f"/api/v1/quotes/{quote['id']}/bind", {}, expect=201)
        issued = client.json("POST", f"/api/v1/policies/{policy['id']}/issue", {})
        if not issued.get("number"):
            raise RuntimeError(f"issued without a number: {issued}")
        latencies.append(clock() - before)
    return Figures(latencies, clock() - started)


# --- bulk re-rating ------------------------------------------------------------------

SEED_POLICIES = """
INSERT INTO policies (number, customer_id, agent_id, product_id, state, start_date,
                      end_date, payment_frequency, premium, currency, issued_at)
SELECT 'BENCH-' || g, :customer_id, c.agent_id, :product_id, 'in_force',
       current_date - (g % 300), current_date - (g % 300) + 365, 'annual', 10000.00, 'INR',
       now()
FROM generate_series(1, :count) AS g, customers AS c WHERE c.id = :customer_id
"""
# Varied risks, all rateable: every zone, engine band, age band, deductible and bonus.
SEED_VERSIONS = """
INSERT INTO policy_versions (policy_id, version, kind, effective_from, risk, premium,
                             adjustment, currency, trace, product_version_id,
                             rate_table_version)
SELECT p.id, 1, 'new_business', p.start_date,
       jsonb_build_object(
           'vehicle_value', (300000 + (p.id * 7919 % 2000) * 1000)::text,
           'vehicle_age_months', 3 + (p.id % 5) * 11,
           'engine_cc', (ARRAY[998, 1197, 1498, 1995])[1 + p.id % 4],
           'zone', (ARRAY['A', 'B'])[1 + p.id % 2],
           'claim_free_years', p.id % 6,
           'voluntary_deductible', (ARRAY[0, 2500, 5000, 7500, 15000])[1 + p.id % 5]),
       10000.00, 10000.00, 'INR', '[]'::jsonb, :product_version_id, 'default-1'
FROM policies AS p WHERE p.number LIKE 'BENCH-%'
"""


def seed_book(app: Flask, count: int, customer_id: int) -> None:
    from sqlalchemy import text

    from core.db import db
    from core.products import queries
    from core.tenancy import tenant_context
    from tenants import registry
    from tenants.admin import admin_engine

    tenant = registry.by_slug(admin_engine(app), SLUG)
    with app.app_context(), tenant_context(tenant):
        product = queries.by_line(LINE)
        version = queries.versions(product.id)[0]
        params = {"customer_id": customer_id, "product_id": product.id, "count": count}
        db.session.execute(text(SEED_POLICIES), params)
        db.session.execute(text(SEED_VERSIONS), {"product_version_id": version.id})
        db.session.commit()
        db.session.execute(text("ANALYZE policies"))
        db.session.execute(text("ANALYZE policy_versions"))
        db.session.commit()


def measure_bulk(args: argparse.Namespace, customer_id: int) -> None:
    """The bulk job's work function over the whole book, against a per-policy ORM loop
    over a sample of it; both compute the same report and write nothing else."""
    from sqlalchemy import select

    from core.db import db
    from core.policies import renewals, rerating, terms
    from core.policies.models import Policy
    from core.products import rating
    from core.tenancy import tenant_context
    from tenants import registry
    from tenants.admin import admin_engine

    app = ours_app()
    started = time.perf_counter()
    seed_book(app, args.policies, customer_id)
    seeded = time.perf_counter() - started
    print(f"\nseeded {args.policies:,} in-force motor policies in {seeded:.1f} s")
    tenant = registry.by_slug(admin_engine(app), SLUG)
    with app.app_context(), tenant_context(tenant):
        started = time.perf_counter()
        report = rerating.rerate(LINE)
        bulk = time.perf_counter() - started
        if report.rerated + report.refused != report.policies or report.refused:
            raise RuntimeError(f"the bulk job re-rated {report.rerated} of {report.policies}")
        sample_ids = db.session.scalars(
            select(Policy.id).where(Policy.number.like("BENCH-%")).order_by(Policy.id)
            .limit(args.sample)
        ).all()  # fmt: skip
        db.session.remove()
        loop = rerating.Report(LINE)
        started = time.perf_counter()
        for policy_id in sample_ids:
            policy = db.session.get(Policy, policy_id)
            current = policy.versions[-1]
            risk = renewals.next_risk(current.risk, terms.term_years(current.risk))
            rated = rating.rate(LINE, risk, policy.end_date)
            loop.count(policy.id, current.premium, rated.premium)
        per_policy = (time.perf_counter() - started) / len(sample_ids)
        # Same policies, same answers.
        bulk_premiums = {change[1]: change[3] for change in report.changes}
        if any(bulk_premiums.get(change[1]) != change[3] for change in loop.changes):
            raise RuntimeError("the ORM loop and the bulk job disagree on a premium")
    orm_book = per_policy * report.policies
    ratio = orm_book / bulk
    print(
        f"bulk re-rating: {report.policies:,} policies in {bulk:.1f} s"
        f" ({report.policies / bulk:,.0f} policies/s, {report.refused} refused)"
    )
    print(
        f"per-policy ORM loop: {per_policy * 1000:.2f} ms a policy over {len(sample_ids):,}"
        f" policies -> {orm_book:.0f} s for the book"
    )
    print(f"ORM loop time / bulk time = {ratio:.1f}x")
    print(f"{'PASS' if ratio >= BULK_TARGET else 'FAIL'}  bulk at least {BULK_TARGET:.0f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short rounds, as bench/auth.py: both apps under the same drift of the machine.
    parser.add_argument("--requests", type=int, default=100, help="requests per round")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each app")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per app")
    parser.add_argument("--policies", type=int, default=100_000, help="book to re-rate")
    parser.add_argument("--sample", type=int, default=2_000, help="policies the ORM loop rates")
    parser.add_argument("--skip-quotes", action="store_true")
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--serve", choices=("ours", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(ours_app() if args.serve == "ours" else bare_app())
        return
    print(f"database {make_url(database_url()).database}, redis {redis_url()}", flush=True)
    recreate_database(database_url())
    customer_id = provision()
    if not args.skip_quotes:
        measure_quotes(args, customer_id)
    if not args.skip_bulk:
        measure_bulk(args, customer_id)


if __name__ == "__main__":
    main()
