"""A real SMTP server on loopback (aiosmtpd) whose mail the tests read.

One server per test session, started on first use on 127.0.0.1 and a free port.
`receiving(app)` points the app's SMTP channel at it for the duration of a test and
yields the `Mailbox` of what arrived meanwhile:

    @pytest.fixture
    def mailbox(app):
        with smtp.receiving(app) as box:
            yield box
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask


class Mailbox:
    """Messages received since the box was opened."""

    def __init__(self) -> None:
        self._messages: list[EmailMessage] = []
        self._changed = threading.Condition()

    def deliver(self, message: EmailMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    @property
    def messages(self) -> list[EmailMessage]:
        with self._changed:
            return list(self._messages)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    def wait_for(self, address: str, timeout: float = 5.0) -> EmailMessage:
        """The latest message to `address`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in self._messages if address.lower() in m["To"].lower()]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {address} within {timeout}s")
                self._changed.wait(left)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the message has no text part"
    return part.get_content()


def links_in(message: EmailMessage) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", text_of(message))


class _Handler:
    def __init__(self) -> None:
        self.boxes: list[Mailbox] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        for box in list(self.boxes):
            box.deliver(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


_server: dict[str, Any] = {}
_lock = threading.Lock()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server() -> tuple[_Handler, int]:
    """The session's SMTP server (started on first use): its handler and port."""
    with _lock:
        if not _server:
            handler = _Handler()
            port = _free_port()
            controller = Controller(handler, hostname="127.0.0.1", port=port)
            controller.start()
            _server.update(handler=handler, port=port, controller=controller)
    return _server["handler"], _server["port"]


@contextmanager
def receiving(app: Flask) -> Iterator[Mailbox]:
    """Send `app`'s mail to the loopback server while the block runs."""
    handler, port = server()
    box = Mailbox()
    handler.boxes.append(box)
    saved = {key: app.config.get(key) for key in ("SMTP_HOST", "SMTP_PORT")}
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    try:
        yield box
    finally:
        app.config.update(saved)
        handler.boxes.remove(box)
