"""Email, sent through the notification-channel plugin hook.

`send_email` hands the message to the tenant's email channel (tenant setting
`email_channel`, default `smtp`: plugins/notify_smtp, built in and enabled for every
tenant). Flask-Security's mails (password reset, change notices) go the same way
through `SecurityMailUtil`.

Mail is sent in the request that decided to send it, not from a job: these mails
carry one-time links (invitations, password resets) that should not sit in the job
table, and the person is waiting for them.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask_security import MailUtil

from core import plugins, settings
from core.hookspecs import Delivery, Message, Refusal


class DeliveryFailed(RuntimeError):
    """No channel took the message, or the channel could not deliver it."""


def send_email(
    to: str, subject: str, body: str, html: str | None = None, *, idempotency_key: str = ""
) -> Delivery:
    """Send one email to `to` through the current tenant's email channel."""
    channel = settings.get("email_channel")
    message = Message(
        to=to,
        subject=subject,
        body=body,
        html=html,
        idempotency_key=idempotency_key or uuid.uuid4().hex,
    )
    try:
        delivery = plugins.call("powerbuyer_send_message", channel=channel, message=message)
    except Refusal as exc:
        raise DeliveryFailed(exc.message) from exc
    if delivery is None:
        raise DeliveryFailed(f"no enabled plugin sends email through channel {channel!r}")
    return delivery


class SecurityMailUtil(MailUtil):
    """Flask-Security's mail sender, replaced by the notification hook."""

    def send_mail(
        self,
        template: str,
        subject: str,
        recipient: str | tuple[str, str],
        sender: str | tuple[str, str],
        body: str | None,
        html: str | None,
        **kwargs: Any,
    ) -> None:
        # The channel decides the sender (SMTP_FROM); a (name, address) recipient is
        # addressed by its address.
        address = recipient[1] if isinstance(recipient, tuple) else recipient
        send_email(str(address), str(subject), body or "", html)
