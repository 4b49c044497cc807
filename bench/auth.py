"""What auth + tenant + audit cost on an authenticated GET: a benchmark, not a test.

Two WSGI apps, each served over HTTP/1.1 by werkzeug in a process of its own:

  ours  the Power Buyer app (create_app, not in testing mode) answering
        `GET /api/v1/quotes/<id>` (an agent reading a quote of their own customer) on
        a tenant's host with a bearer access token: request id and log line, host ->
        tenant, Flask-Security/Login/Principal, the rate limiter's hook, JWT
        verification with the tenant's derived key, the user and roles (remembered by
        the process until a user or role changes, core.generations), the revocation
        digest, roles -> permissions, the quote read in a tenant-scoped transaction
        (role and search_path set) under the quotes' reach rule (the customer in the
        agent's book), the audit hooks;
  bare  a bare Flask + Flask-SQLAlchemy app whose one view reads the same quote row by
        id, in one query, schema-qualified, connected as the database superuser (no
        tenant role, no search_path), and answers the same JSON. Same driver,
        engine options and check of pooled connections as ours: checking them is
        neither auth, tenant nor audit.

Until 2026-11-28 the record was the user itself (`GET /api/v1/me`); once the process
remembered bearer users, that request read nothing from the database, so it no longer
measured a fetch of a row.

Both answers are checked to be byte-identical first. A client in this process then
sends sequential requests over one keep-alive connection to each (http.client), so
HTTP and WSGI are in both figures. Rounds alternate ours, bare, ours, bare, ... after
a warm-up of each, so changes in machine load hit both alike. Prints requests/s and
p50/p95 latency of each, and throughput(ours) / throughput(bare) against the target
of 0.60.

`--breakdown` prints instead where ours spends a request: each before/after/teardown
hook and the view, timed in-process (no HTTP), and for both apps the round trips of one
request: each PostgreSQL message that waits for an answer (from libpq's trace) and each
Redis command.

`--against CHECKOUT` serves ours a second time from another checkout of the project
(say, the commit before a change), as `base`, in the same alternating rounds, and also
prints throughput(ours) / throughput(base): a before/after comparison under the same
load. Both must run on this database's schema.

Run:  python bench/auth.py [--requests 150] [--rounds 60] [--warmup 300] [--breakdown]
                           [--against CHECKOUT]
Database: BENCH_AUTH_DATABASE_URL (a superuser URL), default
postgresql://postgres@127.0.0.1:5432/powerbuyer_bench_auth, dropped and created again
each run, with its roles (prefixed `<database>__`). Redis: REDIS_URL, default
redis://127.0.0.1:6379/13. Exits 0 whatever the figures: it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/auth.py`, Python puts bench/ first on sys.path, where
# bench/tenants.py would shadow the `tenants` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from flask import Flask, jsonify  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench import common  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/powerbuyer_bench_auth"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SLUG = "bench"
SERVER_NAME = "localhost:5000"
HOST = f"{SLUG}.{SERVER_NAME}"
EMAIL = f"agent@{SLUG}.example.com"
PASSWORD = "bench password, not a secret one"
LINE = "motor_private_car"
START = (date.today() + timedelta(days=7)).isoformat()
RISK = {"vehicle_value": "800000", "vehicle_age_months": 36, "engine_cc": 1197, "zone": "A",
        "claim_free_years": 3, "voluntary_deductible": 5000}  # fmt: skip
TARGET = 0.60


def database_url() -> str:
    return os.environ.get("BENCH_AUTH_DATABASE_URL", DEFAULT_URL)


def redis_url() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS)


def ours_app() -> Flask:
    """The product's app, configured as a deployment would be."""
    from core.app import create_app

    # Start-up warnings (no SMTP server configured) are not what this bench reports.
    logging.getLogger("plugins").setLevel(logging.ERROR)
    return create_app(common.ours_config(database_url(), redis_url(), SERVER_NAME))


def provision() -> int:
    """The bench tenant and an agent's book (bench.common.provision_book): a user of
    the default `agent` role with a password and a licensed agent profile, the motor
    product, one customer; the customer's id.

    An agent, not the tenant's admin: by the product's default setting
    (`mfa_required_roles` = ["admin"]) an admin must set up two-factor before the
    password grant gives a token, and the API cannot enrol one. The tenant keeps its
    default settings; the agent is an ordinary API user.
    """
    app = ours_app()
    redis = app.extensions["redis"]
    # Rate-limit counters and sessions of an earlier run of the bench tenant.
    for key in redis.scan_iter(f"pb:*{SLUG}*"):
        redis.delete(key)
    return common.provision_book(app, SLUG, EMAIL, PASSWORD, LINE, HOST)


def bare_app() -> Flask:
    """A bare Flask + Flask-SQLAlchemy app: one view, one query, no auth, no tenant."""
    from sqlalchemy import text

    app, db = common.bare_app("bare", database_url())
    with app.app_context():
        schema = db.session.scalar(
            text("SELECT schema_name FROM public.tenants WHERE slug = :slug"), {"slug": SLUG}
        )
        db.session.remove()
    query = text(
        "SELECT id, line_code, customer_id, agent_id, start_date, risk, premium, currency,"
        " trace, rate_table_version, product_version_id, status, created_at"
        f' FROM "{schema}".quotes WHERE id = :id'
    )

    @app.get("/quotes/<int:quote_id>")
    def quote(quote_id: int) -> Any:
        row = db.session.execute(query, {"id": quote_id}).one_or_none()
        if row is None:
            return jsonify(error="not found"), 404
        return jsonify(
            id=row.id,
            product=row.line_code,
            customer_id=row.customer_id,
            agent_id=row.agent_id,
            start_date=row.start_date.isoformat(),
            risk=row.risk,
            premium=f"{row.premium:.2f}",
            currency=row.currency,
            trace=row.trace,
            rate_table_version=row.rate_table_version,
            product_version_id=row.product_version_id,
            status=row.status,
            created_at=row.created_at.isoformat(),
        )

    return app


# --- serving ------------------------------------------------------------------------


def serve(kind: str) -> None:
    """Child process: serve one app over HTTP/1.1 (keep-alive), print the port."""
    common.serve(ours_app() if kind == "ours" else bare_app())


def start(kind: str, root: Path = ROOT) -> common.Server:
    """Serve `kind` from the checkout at `root` (this one, or `--against`'s)."""
    return common.start(str(root / "bench" / "auth.py"), kind, root)


# --- measuring ----------------------------------------------------------------------


class Client:
    """Sequential GETs of one path on one keep-alive connection."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.path = path
        self.headers = {"Host": HOST, **headers}

    def get(self) -> tuple[int, bytes]:
        self.conn.request("GET", self.path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def run(self, count: int) -> list[float]:
        """Latencies in seconds of `count` requests, each of which must answer 200."""
        latencies = []
        clock = time.perf_counter
        for _ in range(count):
            started = clock()
            status, body = self.get()
            latencies.append(clock() - started)
            if status != 200:
                raise RuntimeError(f"{self.path}: {status} {body[:200]!r}")
        return latencies


def a_quote(port: int, bearer: dict[str, str], customer_id: int) -> int:
    """The id of a motor quote the agent makes for the customer, through the API."""
    client = common.Client(port, HOST, bearer)
    body = {"product": LINE, "customer_id": customer_id, "start_date": START, "risk": RISK}
    return client.json("POST", "/api/v1/quotes", body, expect=201)["id"]


def access_token(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request(
        "POST",
        "/api/v1/auth/token",
        body=json.dumps({"email": EMAIL, "password": PASSWORD}),
        headers={"Host": HOST, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"token: {response.status} {payload[:300]!r}")
    return json.loads(payload)["access_token"]


@dataclass
class Figures:
    latencies: list[float]
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(args: argparse.Namespace, customer_id: int) -> None:
    servers = {"ours": start("ours")}
    if args.against:
        servers["base"] = start("ours", Path(args.against).resolve())
    servers["bare"] = start("bare")
    try:
        token = access_token(servers["ours"].port)
        bearer = {"Authorization": f"Bearer {token}"}
        quote_id = a_quote(servers["ours"].port, bearer, customer_id)
        clients = {
            name: Client(server.port, f"/api/v1/quotes/{quote_id}", bearer)
            for name, server in servers.items()
            if name != "bare"
        }
        answer = clients["ours"].get()
        clients["bare"] = Client(servers["bare"].port, f"/quotes/{quote_id}", {})
        for name, client in clients.items():
            if (other := client.get()) != answer:
                raise RuntimeError(f"the answers differ: ours {answer!r}, {name} {other!r}")
        print(f"{' and '.join(clients)} answer 200 with the same {len(answer[1])} bytes")
        for client in clients.values():
            client.run(args.warmup)
        runs: dict[str, list[Figures]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, client in clients.items():
                started = time.perf_counter()
                latencies = client.run(args.requests)
                runs[name].append(Figures(latencies, time.perf_counter() - started))
    finally:
        for server in servers.values():
            server.stop()
    report(runs, args)


def report(runs: dict[str, list[Figures]], args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nauthenticated GET of one record: {args.rounds} alternating rounds of"
        f" {args.requests} requests, after {args.warmup} warm-up requests"
        f" ({os.cpu_count()} CPUs, load average now {load})"
    )
    print(f"{'':5}| {'req/s':>6} | {'p50 ms':>6} | {'p95 ms':>6} | rounds: low / median / high")
    print("-" * 72)
    total: dict[str, Figures] = {}
    for name, figures in runs.items():
        total[name] = Figures(
            [x for f in figures for x in f.latencies], sum(f.seconds for f in figures)
        )
        print(
            f"{name:5}| {total[name].rps:6.0f} | {total[name].percentile_ms(0.5):6.2f} |"
            f" {total[name].percentile_ms(0.95):6.2f} | {common.spread([f.rps for f in figures])}"
        )
    print()
    for name in runs:
        if name != "bare":
            ratio = total[name].rps / total["bare"].rps
            ratios = [o.rps / b.rps for o, b in zip(runs[name], runs["bare"], strict=True)]
            print(
                f"throughput({name}) / throughput(bare) = {ratio:.3f}"
                f" (rounds: {min(ratios):.3f} .. {max(ratios):.3f})"
            )
    if "base" in runs:
        print(f"throughput(ours) / throughput(base) = {total['ours'].rps / total['base'].rps:.3f}")
    ratio = total["ours"].rps / total["bare"].rps
    print(f"{'PASS' if ratio >= TARGET else 'FAIL'}  ratio at least {TARGET:.2f}")


# --- where ours spends a request --------------------------------------------------------


def round_trips(engine: Any, call: Callable[[], Any]) -> list[str]:
    """What one `call` waits for the servers for: each PostgreSQL message that ends in
    a wait for the answer (a simple-protocol Query, an extended-protocol Sync), read
    from libpq's own trace of the pooled connections, and each Redis command sent.
    """
    import tempfile

    import redis.connection
    from psycopg import pq
    from sqlalchemy import event

    pooled: list[Any] = []

    def remember(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection not in pooled:
            pooled.append(dbapi_connection)

    event.listen(engine, "checkin", remember)
    for _ in range(20):  # every pooled connection passes a check-in
        call()
    event.remove(engine, "checkin", remember)
    sent: list[str] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        chunks = command if isinstance(command, list) else [command]
        words = b"".join(chunks).split(b"\r\n")[2:7:2]
        sent.append("Redis: " + b" ".join(words).decode(errors="replace"))
        return original(self, command, *args, **kwargs)

    with tempfile.TemporaryFile("w+") as trace:
        for dbapi_connection in pooled:
            dbapi_connection.pgconn.trace(trace.fileno())
            dbapi_connection.pgconn.set_trace_flags(
                pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
            )
        redis.connection.AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
        try:
            call()
        finally:
            redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
            for dbapi_connection in pooled:
                dbapi_connection.pgconn.untrace()  # flushes libpq's buffer
        trace.seek(0)
        lines = trace.read().splitlines()
    waits: list[str] = []
    parsed = "(prepared statement)"
    for line in lines:
        # Statements with line breaks continue on lines of their own, skipped here.
        fields = line.split("\t")
        if len(fields) < 3 or fields[0] != "F":
            continue
        message, detail = fields[2], fields[3].strip() if len(fields) > 3 else ""
        if message == "Query":
            waits.append("PostgreSQL: " + detail.strip('"'))
        elif message == "Parse":
            parsed = detail.split('" "', 1)[-1].rstrip('"').split(" NNNN")[0]
        elif message == "Sync":
            waits.append("PostgreSQL: " + parsed)
            parsed = "(prepared statement)"
    return waits + sent


def breakdown(requests: int, customer_id: int) -> None:
    """Time each hook and the view of ours in-process, and list the round trips of
    a request of each app."""
    from core.db import db
    from core.security import jwt

    app = ours_app()
    # The request log lines are still formatted and written, as in `measure`, to nowhere.
    devnull = open(os.devnull, "w")  # noqa: SIM115 (open for the life of the process)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    def label(kind: str, func: Callable[..., Any]) -> str:
        inner = getattr(func, "func", func)  # functools.partial
        return f"{kind} {inner.__module__}.{getattr(inner, '__qualname__', inner)}"

    for hooks, kind in (
        (app.before_request_funcs, "before"),
        (app.after_request_funcs, "after"),
        (app.teardown_request_funcs, "teardown"),
    ):
        for key, funcs in hooks.items():
            hooks[key] = [timed(label(kind, f), f) for f in funcs]
    app.teardown_appcontext_funcs = [
        timed(label("teardown", f), f) for f in app.teardown_appcontext_funcs
    ]
    view = app.view_functions["api.get_quote"]
    app.view_functions["api.get_quote"] = timed("view web.api.quotes.get_quote", view)
    app.wsgi_app = timed("whole request (WSGI, no HTTP)", app.wsgi_app)  # type: ignore[method-assign]
    jwt.verify = timed("  of which core.security.jwt.verify", jwt.verify)

    client = app.test_client()
    base = f"http://{HOST}"
    token = client.post(
        "/api/v1/auth/token", json={"email": EMAIL, "password": PASSWORD}, base_url=base
    ).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"product": LINE, "customer_id": customer_id, "start_date": START, "risk": RISK}
    created = client.post("/api/v1/quotes", json=body, headers=headers, base_url=base)
    ours_path, path = f"/api/v1/quotes/{created.json['id']}", f"/quotes/{created.json['id']}"
    for _ in range(300):
        client.get(ours_path, headers=headers, base_url=base)
    # Outside the app context: a request inside one would reuse it, and its session
    # would outlive the request.
    with app.app_context():
        engine = db.engine
    ours_waits = round_trips(engine, lambda: client.get(ours_path, headers=headers, base_url=base))
    spent.clear()
    for _ in range(requests):
        client.get(ours_path, headers=headers, base_url=base)
    bare = bare_app()
    bare_client = bare.test_client()
    for _ in range(300):
        bare_client.get(path)
    started = time.perf_counter()
    for _ in range(requests):
        bare_client.get(path)
    bare_ms = (time.perf_counter() - started) / requests * 1000
    with bare.app_context():
        engine = bare.extensions["sqlalchemy"].engine
    bare_waits = round_trips(engine, lambda: bare_client.get(path))
    print(f"\nours, GET {ours_path} in-process, mean of {requests} requests:")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        if seconds / requests >= 0.000005:
            print(f"  {seconds / requests * 1000:6.3f} ms  {name}")
    print(f"  {bare_ms:6.3f} ms  bare: whole request (WSGI, no HTTP), for comparison")
    for name, waits in (("ours", ours_waits), ("bare", bare_waits)):
        print(f"\nround trips of one request, {name}: {len(waits)}")
        for wait in waits:
            print(f"  {wait[:120]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short rounds: this machine's speed drifts by half within a minute, and a
    # round of 150 requests (under a second) keeps both apps under the same drift.
    parser.add_argument("--requests", type=int, default=150, help="requests per round")
    parser.add_argument("--rounds", type=int, default=60, help="rounds of each app")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests per app")
    parser.add_argument(
        "--breakdown", action="store_true", help="time ours' hooks in-process instead"
    )
    parser.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="also serve ours from another checkout ('base'), in the same rounds",
    )
    parser.add_argument("--serve", choices=("ours", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    print(f"database {make_url(database_url()).database}, redis {redis_url()}", flush=True)
    common.recreate_database(database_url())
    customer_id = provision()
    if args.breakdown:
        breakdown(args.requests, customer_id)
    else:
        measure(args, customer_id)


if __name__ == "__main__":
    main()
