"""Plugin discovery, per-tenant enablement and failure isolation, with real
distributions: the in-tree plugins through setup.cfg's entry points, and the tiny
distributions in tests/plugins_fixtures installed for real with pip (offline)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from core import plugins
from core.app import create_app
from core.hookspecs import FraudFlag, Premium, RateTable, Refusal, hookimpl
from core.plugins import PluginError, PluginHost
from core.tenancy import NoTenantError, Tenant, tenant_context
from tenants import registry
from tenants.admin import admin_engine
from tests.conftest import host_client

FIXTURES = Path(__file__).resolve().parents[1] / "plugins_fixtures"
EXAMPLE, BROKEN = "pb_example_plugin", "pb_broken_plugin"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each fixture distribution pip-installed into its own directory."""
    root = tmp_path_factory.mktemp("plugin-sites")
    installed = {}
    for dist in (EXAMPLE, BROKEN):
        # Build from a copy: pip leaves build/ and *.egg-info next to the sources.
        source = shutil.copytree(FIXTURES / dist, root / "src" / dist)
        target = root / "site" / dist
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
        # No build isolation: setuptools and wheel come from the venv, so no network.
        subprocess.run(
            [*pip, "--no-build-isolation", "--target", str(target), str(source)], check=True
        )
        installed[dist] = target
    return installed


@pytest.fixture
def on_path(sites: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`on_path(EXAMPLE, ...)` puts those installed distributions on sys.path."""

    def add(*dists: str) -> None:
        for dist in dists:
            monkeypatch.syspath_prepend(str(sites[dist]))

    yield add
    for module in (EXAMPLE, BROKEN):
        sys.modules.pop(module, None)


@pytest.fixture
def host(on_path: Any) -> PluginHost:
    """A lenient manager that found the in-tree plugins, the example and the broken one."""
    on_path(EXAMPLE, BROKEN)
    host = PluginHost(strict=False)
    host.load_entry_points()
    return host


@pytest.fixture
def restore_enablement(app: Flask) -> Iterator[None]:
    """Put public.tenant_plugins back as it was; the CLI writes it for real."""
    with admin_engine(app).connect() as conn:
        before = conn.execute(text("SELECT tenant_id, plugin FROM public.tenant_plugins")).all()
    yield
    with admin_engine(app).begin() as conn:
        conn.execute(text("DELETE FROM public.tenant_plugins"))
        for tenant_id, plugin in before:
            conn.execute(
                text("INSERT INTO public.tenant_plugins (tenant_id, plugin) VALUES (:t, :p)"),
                {"t": tenant_id, "p": plugin},
            )


def reload(app: Flask, slug: str) -> Tenant:
    found = registry.by_slug(admin_engine(app), slug)
    assert found is not None
    return found


def cli(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["plugins", *args])


def flags_of(results: list) -> list[str]:
    return sorted(flag.rule for flags in results for flag in flags)


class Steady:
    """A well-behaved plugin registered in-process, next to the example."""

    @hookimpl
    def powerbuyer_fraud_flags(self, claim: Mapping[str, Any]) -> list[FraudFlag]:
        return [FraudFlag("steady_late_report", "reported late")]


# --- discovery ---------------------------------------------------------------------


def test_in_tree_plugins_load_through_setup_cfg_entry_points(app: Flask):
    host = plugins.manager(app)
    for name in ("premium_motor", "premium_life", "payments_stripe"):
        record = host.record(name)
        assert record is not None, name
        assert (record.distribution, record.version, record.error) == ("powerbuyer", "0.1.0", None)
        assert record.module == f"plugins.{name}.plugin"

    lines = [line for found in host.call("powerbuyer_product_lines", tenant=None) for line in found]
    motor = next(line for line in lines if line.code == "motor_private_car")
    assert [f.name for f in motor.risk_fields] == [
        "vehicle_value",
        "vehicle_age_months",
        "engine_cc",
        "zone",
        "claim_free_years",
        "voluntary_deductible",
        "agreed_value",
    ]
    assert motor.lapse.revival_years is None and motor.lapse.grace_days["monthly"] == 15
    assert motor.default_rate_table.data["third_party_by_engine_band"][1] == Decimal("3416")
    life = next(line for line in lines if line.code == "term_life")
    assert (life.lapse.revival_years, life.lapse.grace_days["annual"]) == (5, 30)
    gateways = host.call("powerbuyer_payment_gateways", tenant=None)
    assert [g.code for found in gateways for g in found] == ["stripe"]


def test_separate_distribution_is_discovered_by_its_entry_point(host: PluginHost):
    record = host.record("pb_example")
    assert record is not None
    assert (record.distribution, record.version, record.module) == (
        "pb-example-plugin",
        "0.3.1",
        "pb_example_plugin",
    )
    assert record.error is None
    codes = {
        line.code for found in host.call("powerbuyer_product_lines", tenant=None) for line in found
    }
    assert codes == {"example_pet", "motor_private_car", "term_life"}


def test_a_module_that_fails_to_import_is_recorded_and_skipped(
    on_path: Any, caplog: pytest.LogCaptureFixture
):
    on_path(BROKEN, EXAMPLE)
    host = PluginHost(strict=False)
    with caplog.at_level(logging.ERROR, logger="core.plugins"):
        host.load_entry_points()

    broken = host.record("pb_broken")
    assert broken is not None and broken.distribution == "pb-broken-plugin"
    assert broken.load_error == "ModuleNotFoundError: No module named 'pb_missing_dependency'"
    assert "pb_broken failed to load" in caplog.text
    assert "pb_broken" not in host.names()
    # Loaded after the broken one (entry points load in name order): not stopped by it.
    assert {"pb_example", "premium_motor", "premium_life", "payments_stripe"} <= set(host.names())
    info = {i.name: i for i in host.describe([])}
    assert info["pb_broken"].error == broken.load_error
    assert info["pb_example"].error is None


def test_strict_plugins_makes_a_load_failure_fatal(on_path: Any):
    on_path(BROKEN)
    with pytest.raises(PluginError, match="pb_broken failed to load"):
        PluginHost(strict=True).load_entry_points()

    app = Flask("strict")
    app.config["STRICT_PLUGINS"] = True
    with pytest.raises(PluginError, match="pb_missing_dependency"):
        plugins.init_app(app)


def test_misspelt_hook_and_hook_wrappers_are_refused_at_load():
    class Misspelt:
        @hookimpl
        def powerbuyer_prodcut_lines(self) -> list:
            return []

    class Wrapper:
        @hookimpl(wrapper=True)
        def powerbuyer_product_lines(self):
            return (yield)

    class Honest:
        @hookimpl
        def powerbuyer_product_lines(self) -> list:
            return []

    host = PluginHost(strict=False)
    assert host.register(Honest(), "honest").load_error is None
    impostor = host.register(Honest(), "honest", distribution="impostor-dist")
    assert impostor.load_error == (
        "PluginError: the name 'honest' is taken by tests.core.test_plugins.Honest"
    )
    misspelt = host.register(Misspelt(), "misspelt")
    wrapper = host.register(Wrapper(), "wrapper")
    assert misspelt.load_error == (
        "PluginError: implements powerbuyer_prodcut_lines, which is not a powerbuyer hook"
    )
    assert wrapper.load_error == (
        "PluginError: wraps powerbuyer_product_lines; hook wrappers are not supported"
    )
    assert host.names() == ["honest"]
    assert host.call("powerbuyer_product_lines", tenant=None) == [[]]


# --- enablement ----------------------------------------------------------------------


def test_enabled_for_alpha_only(
    app: Flask, host: PluginHost, monkeypatch: pytest.MonkeyPatch, restore_enablement: None
):
    monkeypatch.setitem(app.extensions, plugins.EXTENSION, host)
    result = cli(app, "enable", "pb_example", "--tenant", "alpha")
    assert result.exit_code == 0, result.output
    alpha, beta = reload(app, "alpha"), reload(app, "beta")
    assert "pb_example" in alpha.enabled_plugins
    assert "pb_example" not in beta.enabled_plugins

    claim = {"amount": "5000"}
    assert flags_of(host.call("powerbuyer_fraud_flags", tenant=alpha, claim=claim)) == [
        "example_round_amount"
    ]
    assert host.call("powerbuyer_fraud_flags", tenant=beta, claim=claim) == []
    # The tenant in context decides when none is passed, as in a request or a job.
    with app.app_context(), tenant_context(alpha):
        assert flags_of(plugins.call("powerbuyer_fraud_flags", claim=claim)) == [
            "example_round_amount"
        ]
        lines = plugins.call("powerbuyer_product_lines")
    with app.app_context(), tenant_context(beta):
        assert plugins.call("powerbuyer_fraud_flags", claim=claim) == []
    # Alpha enabled none of the in-tree lines, so only the example's line comes back.
    assert [line.code for found in lines for line in found] == ["example_pet"]


def test_tenant_scoped_hook_refuses_to_run_without_a_tenant(host: PluginHost):
    with pytest.raises(NoTenantError, match="powerbuyer_fraud_flags"):
        host.call("powerbuyer_fraud_flags", tenant=None, claim={"amount": "1"})
    with pytest.raises(NoTenantError):
        host.call("powerbuyer_fraud_flags", claim={"amount": "1"})


def test_hook_arguments_are_checked(host: PluginHost, alpha: Tenant):
    with pytest.raises(TypeError, match="missing \\['claim'\\]"):
        host.call("powerbuyer_fraud_flags", tenant=alpha)
    with pytest.raises(TypeError, match="unknown \\['colour'\\]"):
        host.call("powerbuyer_product_lines", tenant=alpha, colour="red")
    with pytest.raises(AttributeError, match="not a powerbuyer hook"):
        host.call("powerbuyer_nothing", tenant=alpha)


def test_a_prepared_call_answers_as_call_does_for_its_tenant_only(
    host: PluginHost, alpha: Tenant, beta: Tenant, caplog: pytest.LogCaptureFixture
):
    """`prepared` (bulk work) checks the hook once; every call still skips plugins not
    enabled or disabled since, checks its arguments, and stays in its tenant."""
    host.register(Steady(), "steady")
    tenant = replace(alpha, enabled_plugins=frozenset({"pb_example", "steady"}))
    with tenant_context(tenant):
        flags = host.prepared("powerbuyer_fraud_flags")
        claim = {"amount": "5000"}
        assert flags_of(flags(claim=claim)) == flags_of(
            host.call("powerbuyer_fraud_flags", claim=claim)
        )
        with pytest.raises(TypeError, match="missing \\['claim'\\]"):
            flags()
        with caplog.at_level(logging.ERROR, logger="core.plugins"):
            assert flags_of(flags(claim={**claim, "explode": True})) == ["steady_late_report"]
        assert flags_of(flags(claim=claim)) == ["steady_late_report"]  # disabled since
    with tenant_context(beta), pytest.raises(NoTenantError, match="another tenant"):
        flags(claim=claim)
    with pytest.raises(NoTenantError):
        host.prepared("powerbuyer_fraud_flags")  # no tenant in context


# --- failure isolation -----------------------------------------------------------------


def test_a_raising_hook_is_logged_disabled_and_the_others_still_answer(
    host: PluginHost, alpha: Tenant, caplog: pytest.LogCaptureFixture
):
    host.register(Steady(), "steady")
    tenant = replace(alpha, enabled_plugins=frozenset({"pb_example", "steady"}))
    with caplog.at_level(logging.ERROR, logger="core.plugins"):
        results = host.call(
            "powerbuyer_fraud_flags", tenant=tenant, claim={"amount": "5000", "explode": True}
        )

    assert flags_of(results) == ["steady_late_report"]
    assert "pb_example raised in powerbuyer_fraud_flags" in caplog.text
    assert "example plugin asked to explode" in caplog.text  # the traceback is logged
    record = host.record("pb_example")
    assert record is not None
    assert record.failure == (
        "powerbuyer_fraud_flags: RuntimeError: example plugin asked to explode"
    )
    # Disabled for the rest of the process: not called again, for any hook or tenant.
    assert flags_of(
        host.call("powerbuyer_fraud_flags", tenant=tenant, claim={"amount": "5000"})
    ) == ["steady_late_report"]
    codes = {
        line.code for found in host.call("powerbuyer_product_lines", tenant=None) for line in found
    }
    assert codes == {"motor_private_car", "term_life"}
    assert not host.enabled_for("pb_example", tenant)
    assert {i.name: i.error for i in host.describe([tenant])}["pb_example"] == record.failure


def test_strict_plugins_makes_a_raising_hook_fatal(on_path: Any, alpha: Tenant):
    on_path(EXAMPLE)
    host = PluginHost(strict=True)
    host.load_entry_points()
    tenant = replace(alpha, enabled_plugins=frozenset({"pb_example"}))
    with pytest.raises(PluginError, match="pb_example raised in powerbuyer_fraud_flags") as caught:
        host.call("powerbuyer_fraud_flags", tenant=tenant, claim={"amount": "1", "explode": True})
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_refusal_reaches_the_caller_and_keeps_the_plugin_enabled(alpha: Tenant):
    class Picky:
        @hookimpl
        def powerbuyer_compute_premium(self, product_line: str, risk: Mapping) -> Premium:
            raise Refusal("zone must be A or B", field="zone")

    host = PluginHost(strict=True)
    host.register(Picky(), "picky")
    tenant = replace(alpha, enabled_plugins=frozenset({"picky"}))
    table = RateTable("motor_private_car", "default-1", {})
    for _ in range(2):
        with pytest.raises(Refusal) as refused:
            host.call(
                "powerbuyer_compute_premium",
                tenant=tenant,
                product_line="motor_private_car",
                risk={"zone": "C"},
                rate_table=table,
                start_date=date(2027, 1, 1),
            )
        assert refused.value.field == "zone"
        assert refused.value.errors == {"zone": "zone must be A or B"}
    assert host.enabled_for("picky", tenant)


# --- the application: screens, start-up ----------------------------------------------


def test_plugin_screens_answer_only_for_tenants_that_enabled_it(
    app: Flask, app_config: dict, on_path: Any, restore_enablement: None
):
    on_path(EXAMPLE)
    example_app = create_app(app_config)
    assert example_app.config["PB_EXAMPLE_STARTED"] is True  # powerbuyer_startup ran
    assert plugins.manager(example_app).record("pb_example") is not None

    result = cli(example_app, "enable", "pb_example", "--tenant", "alpha")
    assert result.exit_code == 0, result.output
    alpha_page = host_client(example_app, "alpha").get("/example/")
    assert (alpha_page.status_code, alpha_page.text) == (200, "example screen")
    assert host_client(example_app, "beta").get("/example/").status_code == 404
    assert host_client(example_app, None).get("/example/").status_code == 404


# --- the CLI ---------------------------------------------------------------------------


def test_cli_list_shows_version_distribution_tenants_and_errors(
    app: Flask, host: PluginHost, monkeypatch: pytest.MonkeyPatch, restore_enablement: None
):
    monkeypatch.setitem(app.extensions, plugins.EXTENSION, host)
    assert cli(app, "enable", "premium_motor", "--tenant", "beta").exit_code == 0
    assert cli(app, "enable", "premium_motor", "--tenant", "alpha").exit_code == 0

    result = cli(app, "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:] if line[:1] != " "}
    name, version, distribution, *enabled = rows["premium_motor"].split()
    assert [name, version, distribution] == ["premium_motor", "0.1.0", "powerbuyer"]
    # Other tests' tenants may sell motor too; the list is sorted and names both.
    tenants = "".join(enabled).split(",")
    assert tenants == sorted(tenants)
    assert {"alpha", "beta"} <= set(tenants)
    assert rows["pb_example"].split() == ["pb_example", "0.3.1", "pb-example-plugin", "-"]
    assert rows["pb_broken"].split()[:3] == ["pb_broken", "1.0.0", "pb-broken-plugin"]
    assert (
        "    error: ModuleNotFoundError: No module named 'pb_missing_dependency'" in result.output
    )


def test_cli_enable_and_disable_write_the_registry(app: Flask, restore_enablement: None):
    assert "premium_life" not in reload(app, "alpha").enabled_plugins

    result = cli(app, "enable", "premium_life", "--tenant", "alpha")
    assert (result.exit_code, result.output) == (
        0,
        "plugin premium_life enabled for tenant alpha\n",
    )
    assert "premium_life" in reload(app, "alpha").enabled_plugins
    assert "premium_life" not in reload(app, "beta").enabled_plugins
    again = cli(app, "enable", "premium_life", "--tenant", "alpha")
    assert again.output == "plugin premium_life was already enabled for tenant alpha\n"

    result = cli(app, "disable", "premium_life", "--tenant", "alpha")
    assert (result.exit_code, result.output) == (
        0,
        "plugin premium_life disabled for tenant alpha\n",
    )
    assert "premium_life" not in reload(app, "alpha").enabled_plugins
    again = cli(app, "disable", "premium_life", "--tenant", "alpha")
    assert (again.exit_code, again.output) == (
        0,
        "plugin premium_life was not enabled for tenant alpha\n",
    )


def test_cli_refuses_unknown_plugins_and_tenants(
    app: Flask, host: PluginHost, monkeypatch: pytest.MonkeyPatch, restore_enablement: None
):
    monkeypatch.setitem(app.extensions, plugins.EXTENSION, host)
    unknown = cli(app, "enable", "nope", "--tenant", "alpha")
    assert unknown.exit_code == 1
    assert (
        "Error: no plugin named 'nope' is installed (installed: notify_smtp, payments_stripe, "
        "pb_example," in unknown.output
    )
    broken = cli(app, "enable", "pb_broken", "--tenant", "alpha")
    assert broken.exit_code == 1
    assert "Error: plugin pb_broken failed to load: ModuleNotFoundError" in broken.output
    no_tenant = cli(app, "enable", "premium_motor", "--tenant", "zzz")
    assert no_tenant.exit_code == 1
    assert "Error: no tenant has the slug 'zzz'" in no_tenant.output
    assert cli(app, "disable", "nope", "--tenant", "alpha").exit_code == 1
    assert cli(app, "disable", "premium_motor", "--tenant", "zzz").exit_code == 1
    missing_option = cli(app, "enable", "premium_motor")
    assert missing_option.exit_code == 2 and "--tenant" in missing_option.output
    assert not {"nope", "pb_broken"} & reload(app, "alpha").enabled_plugins


def test_cli_disables_a_plugin_that_is_enabled_but_no_longer_installed(
    app: Flask, alpha: Tenant, restore_enablement: None
):
    with admin_engine(app).begin() as conn:
        conn.execute(
            text("INSERT INTO public.tenant_plugins (tenant_id, plugin) VALUES (:t, 'gone')"),
            {"t": alpha.id},
        )
    listed = cli(app, "list")
    assert "    error: enabled but not installed" in listed.output
    assert any(
        line.split()[:4] == ["gone", "-", "-", "alpha"] for line in listed.output.splitlines()
    )
    result = cli(app, "disable", "gone", "--tenant", "alpha")
    assert (result.exit_code, result.output) == (0, "plugin gone disabled for tenant alpha\n")
    assert "gone" not in reload(app, "alpha").enabled_plugins


def test_cli_refuses_to_disable_an_always_enabled_plugin(app: Flask, restore_enablement: None):
    assert "notify_smtp" in plugins.manager(app).always_enabled
    result = cli(app, "disable", "notify_smtp", "--tenant", "alpha")
    assert result.exit_code == 1
    assert "enabled for every tenant" in result.output
