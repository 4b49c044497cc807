"""Which database roles the processes use.

Web and worker processes connect as a non-superuser login role. Provisioning and
migrations need a privileged connection. Given only a DATABASE_URL whose role may
create roles (development, CI), the application creates its own login role and uses
that for everything except provisioning and migrations.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url


@dataclass(frozen=True)
class DatabaseUrls:
    app: str
    admin: str | None


def sqlalchemy_url(url: str) -> URL:
    """Any PostgreSQL URL, as SQLAlchemy wants it for psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def libpq_url(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def app_role_password(secret_key: str, role: str) -> str:
    """Derived from SECRET_KEY so every process computes the same one without storage."""
    digest = hmac.new(secret_key.encode(), f"powerbuyer:db-role:{role}".encode(), hashlib.sha256)
    return digest.hexdigest()


def _is_privileged(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(row and row[0])


def ensure_app_role(conn: psycopg.Connection, role: str, password: str) -> None:
    """Create or update the unprivileged, NOINHERIT application login role."""
    # Processes start together (web, worker, parallel migrations); concurrent ALTER ROLE
    # on one role fails with "tuple concurrently updated", so serialise on a lock.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('powerbuyer:app-role'))")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                verb + " ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
            ).format(sql.Identifier(role), sql.Literal(password))
        )


def resolve(
    database_url: str, admin_url: str | None, app_role: str, secret_key: str
) -> DatabaseUrls:
    url = sqlalchemy_url(database_url)
    if admin_url:
        return DatabaseUrls(
            app=url.render_as_string(hide_password=False),
            admin=sqlalchemy_url(admin_url).render_as_string(hide_password=False),
        )
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        if not _is_privileged(conn):
            return DatabaseUrls(app=url.render_as_string(hide_password=False), admin=None)
        password = app_role_password(secret_key, app_role)
        ensure_app_role(conn, app_role, password)
    app = url.set(username=app_role, password=password)
    return DatabaseUrls(
        app=app.render_as_string(hide_password=False),
        admin=url.render_as_string(hide_password=False),
    )


def role_prefix(database: str) -> str:
    """The prefix of the roles a throwaway database's app creates (tests, benchmarks):
    roles are cluster-wide, so they carry the database's name."""
    return f"{database}__"


def recreate_database(url: str) -> str:
    """Drop the database `url` names and its prefixed roles, and create it again, empty
    (tests and benchmarks start from nothing). Returns the URL; `url` must name one."""
    parsed = make_url(url).set(drivername="postgresql")
    database = parsed.database
    if not database:
        raise ValueError(f"{url} names no database")
    maintenance = parsed.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        for (role,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
            (role_prefix(database),),
        ).fetchall():
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return parsed.render_as_string(hide_password=False)
