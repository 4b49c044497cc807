"""`powerbuyer run`: the whole stack on one machine, and `powerbuyer serve`, its web part.

`run` is the development entry point. Creating the app has already started the embedded
PostgreSQL and Redis in this process when DATABASE_URL / REDIS_URL are unset; `run`
brings the schemas to head, makes sure the demo tenant exists, then starts the web
server, one RQ worker and the scheduler as child processes that receive the servers'
URLs in their environment. It supervises them: Ctrl-C or SIGTERM stops them all, then
the embedded servers; a child that dies takes the others down with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

import click
from flask import Flask
from flask.cli import ScriptInfo, pass_script_info
from flask_security import hash_password
from sqlalchemy.engine import make_url
from werkzeug.serving import run_simple

from core import audit, embedded, generations, settings
from core import demo as demo_data
from core.db import db
from core.tenancy import tenant_context
from tenants import migrations, provisioning, registry, runner
from tenants.admin import NoAdminConnection, admin_engine
from tenants.cli import upgrade_public
from tenants.plugin_cli import enable_plugin

# The demo tenant `run` creates on first start. The password is public on purpose: it
# only ever exists in development databases (README.md says so).
DEMO_SLUG = "demo"
DEMO_PLUGINS = ("premium_motor", "premium_life")
DEMO_NAME = "Demo Brokerage"
DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "demo-password-2026"

READY_TIMEOUT_SECONDS = 60
# RQ finishes the job in hand on the first SIGTERM and kills it on the second.
WARM_STOP_SECONDS = 5
COLD_STOP_SECONDS = 3

_PR_SET_PDEATHSIG = 1


class _Stop(BaseException):
    """Raised in the main thread by SIGINT / SIGTERM. Not an Exception, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


@click.command("run")
@click.option("--port", "-p", default=5000, show_default=True, help="The web server's port.")
@click.option("--host", "-h", default="127.0.0.1", show_default=True, help="Interface to bind.")
@pass_script_info
def run_command(info: ScriptInfo, port: int, host: str) -> None:
    """Start PostgreSQL and Redis (embedded unless configured), the web app, a worker and
    the scheduler, with a demo tenant. Ctrl-C stops everything."""
    app = info.load_app()
    if app.config["ENV_NAME"] == "production":
        # `run` creates a demo tenant with a published password and a dev server.
        raise click.ClickException(
            "powerbuyer run is for development; in production run the web app under a WSGI "
            "server (web.wsgi:app), `powerbuyer worker` and `powerbuyer scheduler`"
        )
    server_name = f"{app.config['SERVER_NAME'].split(':')[0]}:{port}"
    app.config["SERVER_NAME"] = server_name
    children: list[Child] = []
    status = 0
    with _stop_on_signals() as stopping:
        try:
            _check_port_free(host, port)
            _describe_servers(app)
            _prepare_database(app)
            env = _child_env(app, server_name)
            for name, args in (
                ("web", ["serve", "--host", host, "--port", str(port)]),
                ("worker", ["worker"]),
                ("scheduler", ["scheduler"]),
            ):
                children.append(_start(name, args, env))
            _wait_until_listening(_probe_host(host), port, children)
            _print_banner(server_name)
            dead = _supervise(children)
            click.echo(
                f"Error: the {dead.name} process exited with code "
                f"{dead.process.returncode}; stopping everything.",
                err=True,
            )
            status = 1
        except _Stop:
            click.echo("\nStopping...")
        finally:
            stopping.set()
            _stop_children(children)
            _stop_servers(app)
    sys.exit(status)


@click.command("serve")
@click.option("--port", "-p", default=5000, show_default=True)
@click.option("--host", "-h", default="127.0.0.1", show_default=True)
@pass_script_info
def serve_command(info: ScriptInfo, port: int, host: str) -> None:
    """Serve the web app alone on Werkzeug's development server (`run` starts it)."""
    run_simple(host, port, info.load_app(), threaded=True, use_reloader=False)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM raise _Stop, until the returned event is set: once stopping,
    a second Ctrl-C must not abort the (bounded) stop half-way."""
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        # As the web server will: a port whose old connections linger is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            _fail(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another server "
                f"running there? Choose another port with --port."
            )


def _describe_servers(app: Flask) -> None:
    # create_app started an embedded server exactly when its variable was unset.
    instance = app.config["INSTANCE_PATH"]
    for label, variable, data in (
        ("PostgreSQL", "DATABASE_URL", "postgres"),
        ("Redis", "REDIS_URL", "redis.db"),
    ):
        if os.environ.get(variable):
            where = make_url(app.config[variable]).render_as_string(hide_password=True)
        else:
            where = f"embedded, data in {instance}/{data}"
        click.echo(f"{label}: {where}")


def _prepare_database(app: Flask) -> None:
    """Public schema and every tenant schema at head; the demo tenant present."""
    try:
        engine = admin_engine(app)
    except NoAdminConnection as exc:
        _fail(str(exc))
    upgrade_public(app)
    tenants = registry.all_tenants(engine)
    todo = runner.pending(engine, tenants, migrations.head("tenant"))
    results = runner.migrate_all(
        app.config["DATABASE_ADMIN_URL"], todo, jobs=min(4, os.cpu_count() or 1)
    )
    failed = [r for r in results if r.error]
    if failed:
        _fail("tenant migration failed for " + ", ".join(f"{r.slug} ({r.error})" for r in failed))
    click.echo(f"Schemas at head: public and {len(tenants)} tenant(s), {len(results)} migrated")
    if any(t.slug == DEMO_SLUG for t in tenants):
        click.echo(f"Demo tenant {DEMO_SLUG!r} exists; reusing it")
        return
    with app.app_context():
        password_hash = hash_password(DEMO_PASSWORD)
    demo = provisioning.create_tenant(
        engine,
        provisioning.NewTenant(DEMO_SLUG, DEMO_NAME, DEMO_EMAIL, password_hash),
        app_role=app.config["APP_DB_ROLE"],
        role_prefix=app.config["DB_ROLE_PREFIX"],
    )
    # The demo brokerage sells the in-tree lines, so a newcomer can quote at once.
    for plugin in DEMO_PLUGINS:
        enable_plugin(engine, demo, plugin)
    demo = registry.by_slug(engine, DEMO_SLUG) or demo
    # A newcomer should reach the screens without an authenticator app at hand; real
    # tenants keep the default (admins must enrol in two-factor at first login).
    with app.app_context(), tenant_context(demo), audit.acting_as("system:demo"):
        settings.set("mfa_required_roles", [])
        db.session.commit()
        seeded = demo_data.seed(password_hash)
    click.echo(f"Created the demo tenant {DEMO_SLUG!r} (two-factor not required for its admin)")
    if seeded:
        click.echo(
            f"Seeded it with {len(seeded.agent_emails)} agents, {seeded.customers} customers"
            f" and {seeded.policies} policies"
        )


def _child_env(app: Flask, server_name: str) -> dict[str, str]:
    env = dict(os.environ)
    # The children reach the servers this process started, or the configured ones.
    env["DATABASE_URL"] = app.config["DATABASE_URL"]
    env["REDIS_URL"] = app.config["REDIS_URL"]
    env["SERVER_NAME"] = server_name
    env["POWERBUYER_INSTANCE"] = app.config["INSTANCE_PATH"]
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:
    # Runs in the child before exec: should `run` be killed outright (SIGKILL), Linux
    # still sends its children SIGTERM instead of leaving them holding the port.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(name: str, args: list[str], env: dict[str, str]) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args],
        env=env,
        # Its own process group: a terminal's Ctrl-C reaches only `run`, which then stops
        # the children in order, and the whole group (a worker's forks) can be signalled.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    return Child(name, process)


def _probe_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _wait_until_listening(host: str, port: int, children: list[Child]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                _fail(
                    f"the {child.name} process exited with code {child.process.returncode} "
                    "while starting"
                )
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    _fail(f"the web server did not listen on {host}:{port} within {READY_TIMEOUT_SECONDS}s")


def _print_banner(server_name: str) -> None:
    click.echo(
        "\nPower Buyer is running.\n"
        f"  Demo brokerage:  http://{DEMO_SLUG}.{server_name}\n"
        f"  Log in as:       {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
        f"  Or as:           {demo_data.MANAGER_EMAIL}, {demo_data.agent_email(1)} to "
        f"{demo_data.agent_email(demo_data.AGENT_COUNT)} (same password)\n"
        f"  Sign up another: http://{server_name}\n"
        "Press Ctrl-C to stop.\n"
    )


def _supervise(children: list[Child]) -> Child:
    """Wait until a child exits (returning it) or a signal raises _Stop."""
    while True:
        for child in children:
            if child.process.poll() is not None:
                return child
        time.sleep(0.5)


def _signal_group(child: Child, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(child.process.pid, sig)


def _wait(children: list[Child], seconds: float) -> list[Child]:
    deadline = time.monotonic() + seconds
    running = [c for c in children if c.process.poll() is None]
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = [c for c in running if c.process.poll() is None]
    return running


def _stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            _signal_group(child, signal.SIGTERM)
    running = _wait(children, WARM_STOP_SECONDS)
    for child in running:
        _signal_group(child, signal.SIGTERM)
    for child in _wait(running, COLD_STOP_SECONDS):
        click.echo(f"the {child.name} process did not stop; killing it", err=True)
    for child in children:
        # Also reaches anything the child left behind in its group.
        _signal_group(child, signal.SIGKILL)
        child.process.wait()


def _stop_servers(app: Flask) -> None:
    # Connections of this process would otherwise count as users of the servers.
    with app.app_context():
        db.engine.dispose()
    if app.config.get("DATABASE_ADMIN_URL"):
        admin_engine(app).dispose()
    app.extensions["redis"].connection_pool.disconnect()
    generations.Watch.close_all()
    embedded.stop()


def init_app(app: Flask) -> None:
    app.cli.add_command(run_command)
    app.cli.add_command(serve_command)
