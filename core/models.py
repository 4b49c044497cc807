"""Every module that declares tenant tables, imported in one place so Alembic and
create-time checks see the whole schema."""

import core.agents.models
import core.audit
import core.customers.models
import core.customers.portal
import core.customers.verification
import core.gdpr
import core.jobs
import core.numbering
import core.policies.models
import core.products.models
import core.security.crypto
import core.security.invitations
import core.security.models
import core.security.tokens
import core.settings

__all__ = ["core"]
