"""Flask-Security's datastore, made safe to call with no tenant in context.

On the apex host (signup, marketing) there is no user table to look in; any lookup,
for example from a stray Authorization header, finds nobody instead of failing.
"""

from __future__ import annotations

from typing import Any

from flask_security import SQLAlchemyUserDatastore

from core.tenancy import current_tenant


class TenantUserDatastore(SQLAlchemyUserDatastore):
    def find_user(self, case_insensitive: bool = False, **kwargs: Any) -> Any:
        if current_tenant() is None:
            return None
        return super().find_user(case_insensitive=case_insensitive, **kwargs)
