"""The plugin manager: entry points, per-tenant enablement, failure isolation.

Plugins are discovered from the `powerbuyer.plugins` entry points, one at a time, so
one that fails to import is recorded with its error and the others still load (a
broken plugin once took all of conda's plugin loading down, conda #12460).

Installed is not enabled. A hook is called only for the plugins the current tenant
enabled (`Tenant.enabled_plugins`, from `public.tenant_plugins`); with no tenant in
context every loaded plugin is called. Each implementation is called on its own:
one that raises is logged, disabled for the rest of the process, and the call goes
on with the others. `STRICT_PLUGINS` (env `POWERBUYER_STRICT_PLUGINS=1`, set by CI)
makes a load failure or a raising hook fatal instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy
from flask import Flask, abort, current_app, request

from core import hookspecs
from core.hookspecs import ENTRY_POINT_GROUP, PROJECT, TENANT_SCOPED, Refusal
from core.tenancy import NoTenantError, Tenant, current_tenant, tenant_context

log = logging.getLogger(__name__)

EXTENSION = "powerbuyer.plugins"


class PluginError(RuntimeError):
    """A plugin failed to load or raised in a hook while STRICT_PLUGINS is on."""


class _Current:
    """Default of `tenant=`: whatever tenant is in context."""

    def __repr__(self) -> str:
        return "CURRENT"


CURRENT: Any = _Current()


@dataclass
class PluginRecord:
    """What the process knows about one plugin: where it came from, how it fared."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    load_error: str | None = None
    # The hook failure that disabled the plugin for the rest of this process.
    failure: str | None = None

    @property
    def error(self) -> str | None:
        return self.load_error or self.failure


@dataclass(frozen=True)
class PluginInfo:
    """One line of `powerbuyer plugins list`."""

    name: str
    version: str | None
    distribution: str | None
    error: str | None
    enabled_tenants: tuple[str, ...]


@dataclass(frozen=True)
class HookResult:
    plugin: str
    value: Any


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginHost:
    """A pluggy manager behind the rules above. One per application."""

    def __init__(
        self, *, strict: bool = False, always_enabled: frozenset[str] = frozenset()
    ) -> None:
        self.strict = strict
        # Built-in plugins every tenant has without enabling them (the default email
        # channel): installed *is* enabled for these, and only these.
        self.always_enabled = always_enabled
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self._loaded: dict[str, PluginRecord] = {}
        self._blueprint_owners: dict[str, str] = {}

    # --- loading -------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every plugin installed under the entry-point group, each on its own."""
        for ep in sorted(metadata.entry_points(group=group), key=lambda ep: ep.name):
            dist = ep.dist
            record = PluginRecord(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
            )
            self._admit(record, ep.load)

    def register(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginRecord:
        """Register a plugin object made in-process rather than found by entry point."""
        record = PluginRecord(
            name=name,
            module=getattr(
                plugin, "__name__", f"{type(plugin).__module__}.{type(plugin).__name__}"
            ),
            distribution=distribution,
            version=version,
        )
        self._admit(record, lambda: plugin)
        return record

    def _admit(self, record: PluginRecord, load: Callable[[], object]) -> None:
        self.records.append(record)
        try:
            taken = self._loaded.get(record.name)
            if taken is not None:
                raise PluginError(
                    f"the name {record.name!r} is taken by {taken.distribution or taken.module}"
                )
            plugin = load()
            self._pm.register(plugin, name=record.name)
            self._refuse_unsupported(plugin)
        except Exception as exc:
            record.load_error = _describe(exc)
            log.error("plugin %s failed to load; skipped", record.name, exc_info=exc)
            if self.strict:
                raise PluginError(
                    f"plugin {record.name} failed to load: {record.load_error}"
                ) from exc
            return
        self._loaded[record.name] = record

    def _refuse_unsupported(self, plugin: object) -> None:
        # Misspelt hooks would otherwise be silently never called, and wrappers cannot
        # work because each implementation is called on its own.
        for caller in self._pm.get_hookcallers(plugin) or []:
            problem = None
            if not caller.has_spec():
                problem = f"implements {caller.name}, which is not a powerbuyer hook"
            elif any(
                impl.plugin is plugin and (impl.wrapper or impl.hookwrapper)
                for impl in caller.get_hookimpls()
            ):
                problem = f"wraps {caller.name}; hook wrappers are not supported"
            if problem:
                self._pm.unregister(plugin)
                raise PluginError(problem)

    # --- state -----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Plugins that loaded (whether or not a hook failure disabled them since)."""
        return sorted(self._loaded)

    def record(self, name: str) -> PluginRecord | None:
        return self._loaded.get(name) or next((r for r in self.records if r.name == name), None)

    def enabled_for(self, name: str, tenant: Tenant | None) -> bool:
        """Whether `name`'s hooks run for `tenant` (None: platform work, every plugin)."""
        record = self._loaded.get(name)
        if record is None or record.failure:
            return False
        return tenant is None or name in tenant.enabled_plugins or name in self.always_enabled

    def describe(self, tenants: Iterable[Tenant]) -> list[PluginInfo]:
        """Every plugin found, and every plugin a tenant enabled that is not installed."""
        tenants = list(tenants)

        def enabled(name: str) -> tuple[str, ...]:
            always = name in self.always_enabled
            return tuple(t.slug for t in tenants if always or name in t.enabled_plugins)

        infos = [
            PluginInfo(
                r.name,
                r.version,
                r.distribution,
                r.error,
                enabled(r.name) if self._loaded.get(r.name) is r else (),
            )
            for r in self.records
        ]
        known = {r.name for r in self.records}
        for name in sorted({n for t in tenants for n in t.enabled_plugins} - known):
            infos.append(PluginInfo(name, None, None, "enabled but not installed", enabled(name)))
        return infos

    # --- calling ---------------------------------------------------------------------

    def _hook(self, hook_name: str, tenant: Tenant | None) -> Any:
        """The hook's caller, checked: a powerbuyer hook, and a tenant if it needs one."""
        caller = getattr(self._pm.hook, hook_name, None)
        if caller is None or not caller.has_spec():
            raise AttributeError(f"{hook_name} is not a powerbuyer hook")
        if tenant is None and getattr(caller.spec.function, TENANT_SCOPED, False):
            raise NoTenantError(f"{hook_name} works on one tenant's business; no tenant given")
        return caller

    @staticmethod
    def _check_arguments(hook_name: str, argnames: Iterable[str], given: Iterable[str]) -> None:
        missing, unknown = set(argnames) - set(given), set(given) - set(argnames)
        if missing or unknown:
            raise TypeError(
                f"{hook_name} takes {', '.join(argnames) or 'no arguments'}; "
                f"missing {sorted(missing)}, unknown {sorted(unknown)}"
            )

    def _run(
        self, caller: Any, hook_name: str, tenant: Tenant | None, kwargs: dict[str, Any]
    ) -> list[HookResult]:
        firstresult = bool(caller.spec.opts.get("firstresult"))
        found: list[HookResult] = []
        # pluggy's order: last registered first, tryfirst/trylast respected.
        for impl in reversed(caller.get_hookimpls()):
            if not self.enabled_for(impl.plugin_name, tenant):
                continue
            try:
                value = impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Refusal:
                raise
            except Exception as exc:
                self._disable(impl.plugin_name, hook_name, exc)
                continue
            if value is not None:
                found.append(HookResult(impl.plugin_name, value))
                if firstresult:
                    break
        return found

    def results(
        self, hook_name: str, /, *, tenant: Tenant | None = CURRENT, **kwargs: Any
    ) -> list[HookResult]:
        """Call `hook_name` on each plugin enabled for `tenant` (default: the current
        one) and return the non-None results with the plugin that gave each."""
        explicit = tenant is not CURRENT
        if not explicit:
            tenant = current_tenant()
        caller = self._hook(hook_name, tenant)
        self._check_arguments(hook_name, caller.spec.argnames, kwargs)
        scope: AbstractContextManager[Any] = tenant_context(tenant) if explicit else nullcontext()
        with scope:
            return self._run(caller, hook_name, tenant, kwargs)

    def prepared(self, hook_name: str) -> Callable[..., Any]:
        """`call` for the current tenant with the hook's checks done once: for bulk work
        that calls one hook thousands of times in the same tenant (re-rating a book).
        Each call still skips plugins not enabled, or disabled by a failure since."""
        tenant = current_tenant()
        caller = self._hook(hook_name, tenant)
        argnames = frozenset(caller.spec.argnames)
        firstresult = bool(caller.spec.opts.get("firstresult"))

        def call(**kwargs: Any) -> Any:
            if kwargs.keys() != argnames:
                self._check_arguments(hook_name, caller.spec.argnames, kwargs)
            if current_tenant() != tenant:
                raise NoTenantError(f"{hook_name} was prepared for another tenant")
            found = self._run(caller, hook_name, tenant, kwargs)
            if firstresult:
                return found[0].value if found else None
            return [result.value for result in found]

        return call

    def call(self, hook_name: str, /, *, tenant: Tenant | None = CURRENT, **kwargs: Any) -> Any:
        """Like pluggy's hook call: a list of the non-None results, or for a
        `firstresult` hook the first of them (None when there is none)."""
        found = self.results(hook_name, tenant=tenant, **kwargs)
        caller = getattr(self._pm.hook, hook_name)
        if caller.spec.opts.get("firstresult"):
            return found[0].value if found else None
        return [r.value for r in found]

    def _disable(self, name: str, hook_name: str, exc: Exception) -> None:
        record = self._loaded[name]
        record.failure = f"{hook_name}: {_describe(exc)}"
        log.error(
            "plugin %s raised in %s; disabled for the rest of this process",
            name,
            hook_name,
            exc_info=exc,
        )
        if self.strict:
            raise PluginError(f"plugin {name} raised in {hook_name}: {_describe(exc)}") from exc

    # --- the application -------------------------------------------------------------

    def register_blueprints(self, app: Flask) -> None:
        """Register every plugin's screens; tenants that did not enable it get 404."""
        for result in self.results("powerbuyer_blueprints", tenant=None):
            for blueprint in result.value:
                try:
                    app.register_blueprint(blueprint)
                except Exception as exc:  # a name clash with another blueprint
                    self._disable(result.plugin, "powerbuyer_blueprints", exc)
                    break
                self._blueprint_owners[blueprint.name] = result.plugin
        if self._blueprint_owners:
            app.before_request(self._gate_blueprints)

    def _gate_blueprints(self) -> None:
        owners = {self._blueprint_owners.get(name) for name in request.blueprints} - {None}
        if not owners:
            return
        tenant = current_tenant()
        if tenant is None or not all(self.enabled_for(owner, tenant) for owner in owners):
            abort(404)


def init_app(app: Flask) -> None:
    host = PluginHost(
        strict=bool(app.config.get("STRICT_PLUGINS")),
        always_enabled=frozenset(app.config.get("PLUGINS_ALWAYS_ENABLED", ())),
    )
    host.load_entry_points()
    host.register_blueprints(app)
    app.extensions[EXTENSION] = host


def startup(app: Flask) -> None:
    """Run `powerbuyer_startup` once the application is fully created."""
    manager(app).call("powerbuyer_startup", tenant=None, app=app)


def manager(app: Flask | None = None) -> PluginHost:
    return (app or current_app).extensions[EXTENSION]


def call(hook_name: str, /, **kwargs: Any) -> Any:
    """Call a hook on the current app's plugins for the tenant in context."""
    return manager().call(hook_name, **kwargs)
