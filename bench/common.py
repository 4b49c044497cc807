"""What the HTTP benchmarks share: a fresh database, a server per app in a process of
its own, a keep-alive client, and latency figures.

Each benchmark serves two WSGI apps (ours and a bare baseline) with werkzeug over
HTTP/1.1 in child processes started as `python <bench file> --serve <kind>`, and
drives both from one client process in alternating rounds, so that changes in the
machine's load hit both alike.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from core.dbroles import recreate_database  # noqa: F401 (each bench starts from an empty one)

ROOT = Path(__file__).resolve().parent.parent


def ours_config(database_url: str, redis_url: str, server_name: str) -> dict[str, Any]:
    """The product's configuration as a deployment would have it (not testing mode)."""
    name = make_url(database_url).database
    return {
        "DATABASE_URL": database_url,
        "DATABASE_ADMIN_URL": None,
        "REDIS_URL": redis_url,
        # Roles are cluster-wide; the prefix keeps the bench's apart from the rest.
        "DB_ROLE_PREFIX": f"{name}__",
        "APP_DB_ROLE": f"{name}__app",
        "RQ_QUEUE_PREFIX": f"pbbench:{name}",
        "SERVER_NAME": server_name,
    }


def bare_app(name: str, database_url: str) -> tuple[Any, Any]:
    """The baseline's start: a bare Flask app with Flask-SQLAlchemy on the bench
    database, with the product's driver, engine options and check of pooled connections
    (core.db.check_connections_on_checkout): checking them is no part of what the
    benches compare. (app, db)."""
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from core.config import load_config
    from core.db import check_connections_on_checkout

    app = Flask(name)
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        make_url(database_url).set(drivername="postgresql+psycopg").render_as_string(False)
    )
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = load_config()["SQLALCHEMY_ENGINE_OPTIONS"]
    db = SQLAlchemy(app)
    with app.app_context():
        check_connections_on_checkout(db.engine)
    return app, db


def serve(app: Any) -> None:
    """Child process: serve `app` over HTTP/1.1 (werkzeug answers each request with
    `Connection: close`, for both apps alike); print the port."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class KeepAlive(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            # The development server's access log is neither app's; ours logs each
            # request itself (web/requestlog.py), and that stays in.
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAlive)
    print(server.server_port, flush=True)
    server.serve_forever()


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start(script: str, kind: str, root: Path = ROOT) -> Server:
    """Run `python <script> --serve <kind>` in the checkout at `root` (this one, or
    another to compare against) and wait for the port it prints."""
    process = subprocess.Popen(
        [sys.executable, script, "--serve", kind],
        stdout=subprocess.PIPE,
        # Ours writes its request log lines, as in production; they are dropped.
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=root,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError(f"the {kind} server did not start (run with --serve {kind} to see)")
    return Server(process, int(line))


class Client:
    """Sequential requests on one keep-alive connection to one host."""

    def __init__(self, port: int, host: str, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {"Host": host, **(headers or {})}

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, payload = self.request(method, path, body)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload)


@dataclass
class Figures:
    latencies: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def spread(rates: list[float]) -> str:
    """The rounds' rates in brief: lowest, median and highest."""
    ordered = sorted(rates)
    return f"{ordered[0]:.0f} / {ordered[len(ordered) // 2]:.0f} / {ordered[-1]:.0f}"


def merged(figures: list[Figures]) -> Figures:
    return Figures([x for f in figures for x in f.latencies], sum(f.seconds for f in figures))


def timed_calls(call: Callable[[], Any], count: int) -> Figures:
    """Latencies of `count` sequential calls of `call`, and their total time."""
    import time

    clock = time.perf_counter
    latencies = []
    started = clock()
    for _ in range(count):
        before = clock()
        call()
        latencies.append(clock() - before)
    return Figures(latencies, clock() - started)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average now {load}"


# --- a tenant with a book ----------------------------------------------------------

# The in-tree plugin of each line a bench quotes.
LINE_PLUGINS = {"motor_private_car": "premium_motor", "term_life": "premium_life"}


def provision_book(
    app: Any, slug: str, agent_email: str, password: str, line: str, host: str
) -> int:
    """Tenant `slug` with the plugin of `line` and its product enabled, an agent (a user
    of the `agent` role with a licensed agent profile) and one customer in the agent's
    book; the customer's id."""
    from flask_login import login_user
    from flask_security import hash_password
    from sqlalchemy import select

    from core.agents.models import Agent
    from core.customers import operations as customers
    from core.db import db
    from core.products import operations as products
    from core.security.models import User
    from core.tenancy import tenant_context
    from tenants import provisioning, registry
    from tenants.admin import admin_engine
    from tenants.cli import upgrade_public
    from tenants.plugin_cli import enable_plugin

    upgrade_public(app)
    with app.app_context():
        engine = admin_engine(app)
        tenant = provisioning.create_tenant(
            engine,
            provisioning.NewTenant(
                slug, "Bench", f"admin@{slug}.example.com", hash_password(password)
            ),
            app_role=app.config["APP_DB_ROLE"],
            role_prefix=app.config["DB_ROLE_PREFIX"],
        )
        enable_plugin(engine, tenant, LINE_PLUGINS[line])
        tenant = registry.by_slug(engine, slug)
        with tenant_context(tenant):
            user = app.extensions["security"].datastore.create_user(
                email=agent_email, password=hash_password(password), roles=["agent"]
            )
            db.session.flush()
            agent = Agent(
                user_id=user.id,
                licence_number="BENCH-1",
                licence_expires_on=date.today() + timedelta(days=3 * 365),
            )
            db.session.add(agent)
            db.session.commit()
            agent_id = agent.id
            admin = db.session.scalars(
                select(User).where(User.email == f"admin@{slug}.example.com")
            ).one()
            # The admin enables the product and adds the customer, as on a request of theirs.
            with app.test_request_context(base_url=f"http://{host}"):
                login_user(admin)
                products.enable_product(line)
                customer = customers.create(
                    {"kind": "person", "first_name": "Bench", "last_name": "Buyer",
                     "agent_id": agent_id},
                    force=True,
                )  # fmt: skip
                customer_id = customer.id
    return customer_id
