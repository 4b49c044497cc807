"""Email through the notification-channel hook: the built-in SMTP channel, enabled for
every tenant, delivering to a real SMTP server on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from core import notify, plugins, settings
from core.db import db
from core.tenancy import Tenant, tenant_context
from tests import smtp


@pytest.fixture
def mailbox(app: Flask) -> Iterator[smtp.Mailbox]:
    with smtp.receiving(app) as box:
        yield box


def test_the_smtp_channel_is_on_for_every_tenant_without_enabling(
    app: Flask, alpha: Tenant, beta: Tenant
) -> None:
    host = plugins.manager(app)
    assert "notify_smtp" in host.names()
    for tenant in (alpha, beta):
        assert "notify_smtp" not in tenant.enabled_plugins
        assert host.enabled_for("notify_smtp", tenant)
    # Only built-ins are: an installed plugin the tenant did not enable stays off.
    assert not host.enabled_for("premium_motor", alpha)
    (info,) = [i for i in host.describe([alpha, beta]) if i.name == "notify_smtp"]
    assert info.enabled_tenants == ("alpha", "beta")


def test_send_email_arrives_at_the_smtp_server(
    app: Flask, alpha: Tenant, mailbox: smtp.Mailbox
) -> None:
    with app.test_request_context(), tenant_context(alpha):
        delivery = notify.send_email(
            "reader@example.com", "Quarterly statement", "Plain words.", "<p>Rich words.</p>"
        )
    assert delivery.channel == "smtp"
    assert delivery.status == "sent"
    mail = mailbox.wait_for("reader@example.com")
    assert mail["Subject"] == "Quarterly statement"
    assert mail["From"] == "Alpha <no-reply@localhost>"
    assert mail["Message-ID"] == delivery.external_id
    assert smtp.text_of(mail).strip() == "Plain words."
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and "<p>Rich words.</p>" in html.get_content()


def test_one_idempotency_key_delivers_once(app: Flask, alpha, mailbox) -> None:
    with app.test_request_context(), tenant_context(alpha):
        first = notify.send_email("once@example.com", "Once", "Body", idempotency_key="k-42")
        again = notify.send_email("once@example.com", "Once", "Body", idempotency_key="k-42")
    assert again.external_id == first.external_id
    assert len(mailbox.to("once@example.com")) == 1


def test_an_unreachable_server_is_a_refusal_not_a_broken_plugin(app: Flask, alpha) -> None:
    with smtp.receiving(app) as box, app.test_request_context(), tenant_context(alpha):
        working = app.config["SMTP_PORT"]
        app.config["SMTP_PORT"] = smtp._free_port()  # nobody listens there
        try:
            with pytest.raises(notify.DeliveryFailed, match="did not take the message"):
                notify.send_email("late@example.com", "Hello", "Body", idempotency_key="k-43")
        finally:
            app.config["SMTP_PORT"] = working
        # Still enabled, and the failed attempt did not spend the key.
        notify.send_email("late@example.com", "Hello", "Body", idempotency_key="k-43")
        assert len(box.to("late@example.com")) == 1
    assert plugins.manager(app).enabled_for("notify_smtp", alpha)


def test_without_a_server_development_logs_the_mail_and_says_so(
    app: Flask, alpha, monkeypatch, caplog
) -> None:
    monkeypatch.setitem(app.config, "SMTP_HOST", None)
    with caplog.at_level(logging.WARNING), app.test_request_context(), tenant_context(alpha):
        notify.send_email("dev@example.com", "Logged", "Visible in the log")
    assert "SMTP_HOST is not set; this email was not sent" in caplog.text
    assert "Visible in the log" in caplog.text

    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    refused = pytest.raises(notify.DeliveryFailed, match="no mail server is configured")
    with app.test_request_context(), tenant_context(alpha), refused:
        notify.send_email("prod@example.com", "Nope", "Body")


def test_a_tenant_choosing_a_channel_nobody_provides_gets_a_clear_failure(
    app: Flask, alpha
) -> None:
    with app.test_request_context(), tenant_context(alpha):
        settings.set("email_channel", "carrier-pigeon")
        try:
            with pytest.raises(notify.DeliveryFailed, match="carrier-pigeon"):
                notify.send_email("x@example.com", "Hi", "Body")
        finally:
            db.session.rollback()
