"""The plugin kit works for a plugin author: the template in docs/plugin-template is
built and installed as a distribution of its own, and its test suite runs against a
real Power Buyer through the `pytest11` fixtures (tenants/pytest_plugin.py).

Those tests quote the template's travel line through the API on the tenant that
enabled it, and show another tenant cannot use it; here we check they all ran and
passed, and that pytest found the fixtures by the entry point, not by a `-p` flag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docs" / "plugin-template"


def _other_redis_db(url: str) -> str:
    """The same Redis server, another database: the kit's tenants have ids of their
    own, which must not meet this suite's keys."""
    parsed = make_url(url) if url.startswith("redis://") else None
    if parsed is not None:
        current = int(parsed.database or 0)
        return parsed.set(database=str(15 if current != 15 else 14)).render_as_string(
            hide_password=False
        )
    return url + ("&" if "?" in url else "?") + "db=15"


def test_the_template_installs_and_its_tests_pass_against_power_buyer(
    tmp_path: Path, database_url: str, app_config: dict
) -> None:
    source = shutil.copytree(TEMPLATE, tmp_path / "src")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
            "--no-build-isolation", "--target", str(site), str(source),
        ],
        check=True,
    )  # fmt: skip
    assert (site / "powerbuyer_travel" / "plugin.py").is_file()
    shutil.rmtree(source / "powerbuyer_travel")  # the tests must use the installed copy

    database = make_url(database_url).database
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "TEST_DATABASE_URL": make_url(database_url)
        .set(database=f"{database}_kit")
        .render_as_string(hide_password=False),
        "REDIS_URL": _other_redis_db(app_config["REDIS_URL"]),
        "POWERBUYER_STRICT_PLUGINS": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "5 passed" in output, output
    if "skipped" in output:
        pytest.fail(f"the template's tests skipped something:\n{output}")
