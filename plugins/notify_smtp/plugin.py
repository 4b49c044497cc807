"""The default email channel: SMTP.

Built in and enabled for every tenant (`PLUGINS_ALWAYS_ENABLED` in core/config.py), so
every brokerage can receive invitations and password resets without enabling
anything; a tenant may switch its `email_channel` setting to another plugin's.

Configured from the environment at start-up: `SMTP_HOST`, `SMTP_PORT` (25),
`SMTP_FROM`, `SMTP_USERNAME` and `SMTP_PASSWORD` (both or neither), `SMTP_STARTTLS`
(1 to upgrade the connection before logging in). Without `SMTP_HOST`, development
and tests log each mail instead of sending it, and say so; production refuses.

A mail server that cannot be reached or refuses the message is a `Refusal`, not a
plugin failure: the caller hears why, and the channel stays enabled for the next mail.
"""

from __future__ import annotations

import logging
import os
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING

from flask import current_app

from core.hookspecs import Delivery, Message, NotificationChannel, Refusal, hookimpl
from core.tenancy import require_tenant, tenant_key

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

CHANNEL = "smtp"
TIMEOUT_SECONDS = 10
# How long a sent message's idempotency key is remembered.
SENT_TTL_SECONDS = 7 * 24 * 3600


@hookimpl
def powerbuyer_startup(app: Flask) -> None:
    env = os.environ
    app.config.setdefault("SMTP_HOST", env.get("SMTP_HOST") or None)
    app.config.setdefault("SMTP_PORT", int(env.get("SMTP_PORT", "25")))
    app.config.setdefault("SMTP_FROM", env.get("SMTP_FROM") or None)
    app.config.setdefault("SMTP_USERNAME", env.get("SMTP_USERNAME") or None)
    app.config.setdefault("SMTP_PASSWORD", env.get("SMTP_PASSWORD") or None)
    app.config.setdefault("SMTP_STARTTLS", env.get("SMTP_STARTTLS", "") in ("1", "true", "yes"))
    if not app.config["SMTP_HOST"]:
        log.warning(
            "SMTP_HOST is not set: %s",
            "email cannot be sent"
            if app.config.get("ENV_NAME") == "production"
            else "emails are written to this log instead of being sent",
        )


@hookimpl
def powerbuyer_notification_channels() -> list[NotificationChannel]:
    return [NotificationChannel(code=CHANNEL, name="Email (SMTP)", medium="email")]


@hookimpl
def powerbuyer_send_message(channel: str, message: Message) -> Delivery | None:
    if channel != CHANNEL:
        return None
    config = current_app.config
    mail = _compose(message)
    redis = current_app.extensions["redis"]
    sent_key = tenant_key("notify_smtp", "sent", message.idempotency_key)
    # Claim the key first: a retried call with the same key delivers nothing twice.
    if not redis.set(sent_key, mail["Message-ID"], nx=True, ex=SENT_TTL_SECONDS):
        earlier = redis.get(sent_key)
        return Delivery(CHANNEL, earlier.decode() if earlier else mail["Message-ID"], "sent")
    try:
        if config.get("SMTP_HOST"):
            _send(mail)
        elif config.get("ENV_NAME") == "production":
            raise Refusal("no mail server is configured (SMTP_HOST)")
        else:
            log.warning("SMTP_HOST is not set; this email was not sent:\n%s", mail)
    except BaseException:
        redis.delete(sent_key)
        raise
    return Delivery(CHANNEL, mail["Message-ID"], "sent")


def _sender() -> str:
    configured = current_app.config.get("SMTP_FROM")
    if configured:
        return configured
    host = current_app.config["SERVER_NAME"].split(":")[0]
    return f"{require_tenant().name} <no-reply@{host}>"


def _compose(message: Message) -> EmailMessage:
    mail = EmailMessage()
    sender = _sender()
    mail["From"] = sender
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Message-ID"] = make_msgid(
        idstring=message.idempotency_key, domain=sender.rsplit("@", 1)[-1].rstrip(">")
    )
    mail.set_content(message.body)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def _send(mail: EmailMessage) -> None:
    config = current_app.config
    try:
        with smtplib.SMTP(
            config["SMTP_HOST"], int(config["SMTP_PORT"]), timeout=TIMEOUT_SECONDS
        ) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USERNAME"):
                smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"] or "")
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise Refusal(f"the mail server did not take the message: {exc}") from exc
