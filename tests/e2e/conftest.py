"""Browser journeys: Playwright driving Debian's Chromium against a live server.

The server is the real app on a free loopback port, with SERVER_NAME
`localhost:<port>`; Chromium resolves `*.localhost` to loopback by itself, so tenant
hosts need no /etc/hosts entries. A real `powerbuyer worker` process runs the jobs.

No browser is ever downloaded. Without /usr/bin/chromium the journeys skip on a
laptop, and fail where PB_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from core.app import create_app
from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def live_config(app_config: dict, app: Flask, live_port: int) -> dict:
    # `app` first: it creates the database and the session's tenants. Own queues, so
    # the journeys' worker never takes a job another test left queued on purpose.
    return {
        **app_config,
        "SERVER_NAME": f"localhost:{live_port}",
        "TESTING": False,
        "RQ_QUEUE_PREFIX": app_config["RQ_QUEUE_PREFIX"] + ":e2e",
    }


@pytest.fixture(scope="session")
def live_server(live_config: dict, live_port: int) -> Iterator[str]:
    """The app served on 127.0.0.1:<port>; yields the apex URL."""
    server_app = create_app(live_config)
    server = make_server("127.0.0.1", live_port, server_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{live_port}"
    server.shutdown()
    thread.join(timeout=10)


def process_env(config: dict) -> dict[str, str]:
    """Environment for a child process so it builds the same app as `config`."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": config["DATABASE_URL"],
            "REDIS_URL": config["REDIS_URL"],
            "DB_ROLE_PREFIX": config["DB_ROLE_PREFIX"],
            "APP_DB_ROLE": config["APP_DB_ROLE"],
            "RQ_QUEUE_PREFIX": config["RQ_QUEUE_PREFIX"],
            "SERVER_NAME": config["SERVER_NAME"],
            "POWERBUYER_INSTANCE": config["INSTANCE_PATH"],
        }
    )
    env.pop("DATABASE_ADMIN_URL", None)
    return env


@pytest.fixture(scope="module")
def worker(live_config: dict) -> Iterator[subprocess.Popen]:
    """One real RQ worker process for the session's jobs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "worker"],
        cwd=ROOT,
        env=process_env(live_config),
    )
    time.sleep(0.5)
    assert proc.poll() is None, "the worker exited at start"
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("PB_REQUIRE_BROWSER") == "1":
            pytest.fail("PB_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("Debian's Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page: Any, base: str, email: str, *, landing: str | None = "/") -> None:
    """Sign in on the tenant at `base` with the suite's password; wait for `landing`
    (None when a second factor comes next)."""
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    if landing is not None:
        page.wait_for_url(base + landing)
