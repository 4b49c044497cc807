"""The privileged connection, used only by provisioning and migrations."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool


class NoAdminConnection(RuntimeError):
    """Raised when privileged work is asked of a process that has no admin URL."""


def admin_engine(app: Flask) -> Engine:
    engine = app.extensions.get("powerbuyer.admin_engine")
    if engine is None:
        url = app.config.get("DATABASE_ADMIN_URL")
        if not url:
            raise NoAdminConnection(
                "provisioning and migrations need a privileged connection: set "
                "DATABASE_ADMIN_URL, or give DATABASE_URL a role with CREATEROLE"
            )
        # Admin work is rare and short; holding no pooled superuser connections
        # keeps them from outliving the command that needed them.
        engine = create_engine(url, poolclass=NullPool)
        app.extensions["powerbuyer.admin_engine"] = engine
    return engine
