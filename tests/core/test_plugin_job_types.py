"""Job types contributed by a plugin run only for tenants that enabled the plugin."""

from __future__ import annotations

import dataclasses

import pytest
from flask import Flask
from sqlalchemy import select

from core import jobs, plugins
from core.db import db
from core.hookspecs import hookimpl
from core.tenancy import Tenant, tenant_context
from tests.conftest import rolled_back_session

PLUGIN = "pbtest_jobplugin"


def echo(ctx: jobs.JobContext, **payload: object) -> dict:
    return {"echo": payload}


class JobPlugin:
    @hookimpl
    def powerbuyer_job_types(self) -> dict:
        return {"pbtest_jobplugin.echo": echo}


class ClashingPlugin:
    @hookimpl
    def powerbuyer_job_types(self) -> dict:
        return {"pbtest_jobplugin.echo": lambda ctx: None}


@pytest.fixture
def host(app: Flask, monkeypatch: pytest.MonkeyPatch) -> plugins.PluginHost:
    host = plugins.PluginHost()
    host.register(JobPlugin(), PLUGIN)
    monkeypatch.setitem(app.extensions, plugins.EXTENSION, host)
    monkeypatch.setattr(jobs, "JOB_TYPES", dict(jobs.JOB_TYPES))
    monkeypatch.setattr(jobs, "PLUGIN_JOB_TYPES", {})
    jobs._register_plugin_job_types(app)
    return host


def test_plugin_job_type_is_refused_for_a_tenant_without_the_plugin(
    app: Flask, alpha: Tenant, host: plugins.PluginHost
):
    assert jobs.PLUGIN_JOB_TYPES == {"pbtest_jobplugin.echo": PLUGIN}
    with rolled_back_session(app, alpha), pytest.raises(jobs.JobTypeNotEnabled, match=PLUGIN):
        jobs.enqueue("pbtest_jobplugin.echo", {"n": 1})


def test_plugin_job_type_is_enqueued_for_a_tenant_with_the_plugin(
    app: Flask, alpha: Tenant, host: plugins.PluginHost
):
    enabled = dataclasses.replace(alpha, enabled_plugins=frozenset({PLUGIN}))
    with rolled_back_session(app, alpha), tenant_context(enabled):
        job = jobs.enqueue("pbtest_jobplugin.echo", {"n": 1})
        assert db.session.scalar(select(jobs.Job.type).where(jobs.Job.id == job.id)) == (
            "pbtest_jobplugin.echo"
        )


def test_a_clashing_job_type_is_recorded_not_fatal_unless_strict(
    app: Flask, host: plugins.PluginHost, monkeypatch: pytest.MonkeyPatch
):
    host.register(ClashingPlugin(), "pbtest_clash")
    jobs._register_plugin_job_types(app)  # logged, the first owner keeps the name
    assert jobs.JOB_TYPES["pbtest_jobplugin.echo"] is echo
    monkeypatch.setattr(host, "strict", True)
    with pytest.raises(plugins.PluginError, match="already registered"):
        jobs._register_plugin_job_types(app)
