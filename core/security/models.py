"""User and role tables, created in every tenant schema.

Flask-Security's complete SQLAlchemy models, so MFA, WebAuthn and token columns are
already there for the identity issue. Table names carry no schema: the transaction's
search_path puts them in the current tenant's schema.
"""

from __future__ import annotations

from flask_security.models import sqla

from core.db import Base

sqla.FsModels.set_db_info(base_model=Base, user_table_name="users", role_table_name="roles")


class Role(Base, sqla.FsRoleMixin):
    __tablename__ = "roles"


class User(Base, sqla.FsUserMixin):
    __tablename__ = "users"
