"""Writing customers: create, update, soft delete, merge and unmerge, GDPR export and
erasure, the identity index's backfill. The only code that writes these tables.

Each operation authorizes its caller, reaches its customers through the reach rule
(out of reach is 404), validates everything before writing anything, and is one
transaction committed with its audit entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_login import current_user
from sqlalchemy import Column, and_, bindparam, func, select, tuple_
from sqlalchemy import update as sql_update
from werkzeug.exceptions import NotFound

from core import audit, gdpr, jobs
from core.agents import queries as agent_queries
from core.agents.models import Agent
from core.audit import AuditEntry
from core.customers import queries
from core.customers.models import DERIVED, MERGED, Customer, CustomerContact, identity_value
from core.customers.rules import CustomerInvalid, agent_ids_of, clean
from core.db import Base, committed, db
from core.gdpr import PersonRef
from core.security import scope
from core.security.authz import authorize

MERGE_ACTION, UNMERGE_ACTION = "customers.merge", "customers.unmerge"
BACKFILL_JOB = "customers.identity_backfill"
# Rows per transaction of the backfill: short locks, a few hundred ms each.
BACKFILL_BATCH = 1000
# Merging drops a customer from the book, as deleting does.
MERGE_PERMISSION = "customers:delete"


class DuplicatesFound(Exception):
    """A create that looks like customers already on file; `force` saves anyway."""

    def __init__(self, duplicates: list[queries.Duplicate]) -> None:
        super().__init__(f"{len(duplicates)} likely duplicate(s)")
        self.duplicates = duplicates


class MergeConflict(Exception):
    """A merge or unmerge that cannot apply to the customers as they are now."""


def _subject(user: Any) -> Any:
    return current_user if user is None else user


def _snapshot(customer: Customer) -> dict[str, Any]:
    """What the audit entry compares. Derived columns are left out (they would put a
    name in clear into the log); contacts are counted, their values never logged."""
    values = audit.snapshot(customer, exclude=DERIVED)
    values["contacts"] = [
        {"id": c.id, "label": c.label, "kind": "email" if c.email else "phone"}
        for c in customer.contacts
    ]
    return values


def _check_agent(values: dict[str, Any], user: Any, *, creating: bool) -> dict[str, Any]:
    """Errors about `agent_id`; on create, an agent's customers default to their book.

    A caller who sees only their own book may assign only to themselves: a customer
    they hand to someone else would vanish from their sight on the next request. A
    manager may assign to the agents of their subtree, or to nobody.
    """
    errors: dict[str, list[str]] = {}
    subject = _subject(user)
    every = agent_queries.sees_every_customer(subject)
    manages = agent_queries.manages_customers(subject)
    own = (
        []
        if every or getattr(subject, "id", None) is None
        else list(db.session.scalars(agent_ids_of(subject)))
    )
    if creating and "agent_id" not in values and not manages:
        if not own:
            errors["agent_id"] = ["You have no agent profile: a manager assigns this customer."]
        else:
            values["agent_id"] = own[0]
    agent_id = values.get("agent_id")
    if agent_id is not None and "agent_id" not in errors:
        active = select(Agent.id).where(Agent.id == agent_id, Agent.is_active)
        if db.session.scalar(active) is None:
            errors["agent_id"] = ["No active agent has this id."]
        elif not manages and agent_id not in own:
            errors["agent_id"] = ["You can assign customers only to yourself."]
        elif not every and db.session.scalar(scope.scoped(active, Agent, subject)) is None:
            # Outside the manager's subtree: as good as missing to them.
            errors["agent_id"] = ["No active agent has this id."]
    elif "agent_id" in values and agent_id is None and not manages:
        errors["agent_id"] = ["You can assign customers only to yourself."]
    return errors


def _apply(customer: Customer, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name == "contacts":
            customer.contacts = [CustomerContact(**contact) for contact in value]
        elif name == "marketing_consent":
            if value != customer.marketing_consent or customer.consent_at is None:
                customer.consent_at = datetime.now(UTC)
            customer.marketing_consent = value
        else:
            setattr(customer, name, value)


def _record(customer: Customer) -> dict[str, Any]:
    """The fields `whole_record_errors` looks at, as stored."""
    names = ("kind", "first_name", "last_name", "company_name", "date_of_birth")
    return {name: getattr(customer, name) for name in names}


# --- Create, update, delete -----------------------------------------------------------


def create(payload: Any, *, force: bool = False, user: Any = None) -> Customer:
    """A new customer from `payload` (the API's fields). Raises CustomerInvalid (every
    bad field), or DuplicatesFound unless `force`; nothing is written then."""
    authorize("customers:create", user)
    values = clean(payload)
    errors = _check_agent(values, user, creating=True)
    if errors:
        raise CustomerInvalid(errors)
    if not force:
        duplicates = queries.likely_duplicates(values, user=user)
        if duplicates:
            raise DuplicatesFound(duplicates)

    def work() -> Customer:
        customer = Customer(kind=values["kind"])
        if not values.get("marketing_consent"):
            values.pop("marketing_consent", None)  # never asked: no consent date
        _apply(customer, values)
        db.session.add(customer)
        db.session.flush()
        audit.record(
            "customers.create",
            entity="customers",
            entity_id=customer.id,
            after=_snapshot(customer),
        )
        return customer

    return committed(work)


def update(customer_id: int, payload: Any, *, user: Any = None) -> Customer:
    """Change the fields in `payload` (null clears one). CustomerInvalid names every bad
    field, also those the change makes invalid (a person losing their last name)."""
    authorize("customers:update", user)
    customer = queries.get(customer_id, user)
    values = clean(payload, current=_record(customer))
    errors = _check_agent(values, user, creating=False) if "agent_id" in values else {}
    if errors:
        raise CustomerInvalid(errors)

    def work() -> Customer:
        before = _snapshot(customer)
        _apply(customer, values)
        db.session.flush()
        after = _snapshot(customer)
        if before != after:
            audit.record(
                "customers.update",
                entity="customers",
                entity_id=customer.id,
                before=before,
                after=after,
            )
        return customer

    return committed(work)


def delete(customer_id: int, *, user: Any = None) -> None:
    """Soft delete: the customer leaves every list and lookup, the row stays."""
    authorize("customers:delete", user)
    customer = queries.get(customer_id, user)

    def work() -> None:
        before = _snapshot(customer)
        customer.is_active = False
        audit.record(
            "customers.delete",
            entity="customers",
            entity_id=customer.id,
            before=before,
            after=_snapshot(customer),
        )

    committed(work)


# --- Merge ----------------------------------------------------------------------------


def references() -> list[Column[Any]]:
    """Every column, in any tenant table, that points at a customer (but a merged
    customer's own `merged_into`): what a merge moves. Read from the metadata, so a
    table added later (policies, claims) is moved without changing this code."""
    target = Customer.__table__.c.id
    return [
        fk.parent
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column is target and fk.parent is not Customer.__table__.c.merged_into
    ]


def _moved_key(column: Column[Any]) -> str:
    return f"{column.table.name}.{column.name}"


def _move(column: Column[Any], source: int, target: int, keys: list | None = None) -> list:
    table = column.table
    pk = list(table.primary_key.columns)
    where = column == source
    if keys is not None:
        if not keys:
            return []
        where = and_(where, tuple_(*pk).in_([tuple(key) for key in keys]))
    rows = db.session.execute(
        sql_update(table).where(where).values({column.name: target}).returning(*pk)
    )
    return [list(row) for row in rows]


def merge(keep_id: int, drop_id: int, *, user: Any = None) -> int:
    """Merge customer `drop_id` into `keep_id`: every row pointing at the dropped one
    now points at the kept one, and the dropped one is marked merged (inactive, with
    `merged_into`). Audited as customers.merge with the moved rows; returns the audit
    entry's id, which `unmerge` takes."""
    authorize(MERGE_PERMISSION, user)
    if keep_id == drop_id:
        raise CustomerInvalid({"drop_id": ["A customer cannot be merged into itself."]})
    keep, drop = queries.get(keep_id, user), queries.get(drop_id, user)

    def work() -> None:
        before = _snapshot(drop)
        moved = {_moved_key(column): _move(column, drop.id, keep.id) for column in references()}
        drop.status, drop.merged_into, drop.is_active = MERGED, keep.id, False
        db.session.flush()
        db.session.expire(keep, ["contacts"])
        db.session.expire(drop, ["contacts"])
        audit.record(
            MERGE_ACTION,
            entity="customers",
            entity_id=drop.id,
            before=before,
            after=_snapshot(drop),
            details={"keep_id": keep.id, "drop_id": drop.id, "moved": moved},
        )

    committed(work)
    return db.session.scalars(
        select(AuditEntry.id)
        .where(AuditEntry.action == MERGE_ACTION, AuditEntry.entity_id == str(drop_id))
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).one()


def unmerge(audit_entry_id: int, *, user: Any = None) -> Customer:
    """Undo the merge that audit entry `audit_entry_id` recorded: the dropped customer
    is back as it was, and the rows the merge moved (those still on the kept customer)
    point at it again. MergeConflict if it was undone already or merged again since."""
    authorize(MERGE_PERMISSION, user)
    entry = db.session.get(AuditEntry, audit_entry_id)
    if entry is None or entry.action != MERGE_ACTION or not entry.details:
        raise NotFound("No merge was recorded under this audit entry.")
    keep_id, drop_id = entry.details["keep_id"], entry.details["drop_id"]
    queries.get(keep_id, user)
    drop = scope.get_or_404(Customer, drop_id, user=user)  # inactive now: merged
    if drop.status != MERGED or drop.merged_into != keep_id:
        raise MergeConflict("This merge was undone already, or the customer changed since.")
    changes = entry.changes or {}
    columns = {_moved_key(column): column for column in references()}

    def work() -> Customer:
        before = _snapshot(drop)
        moved_back = {}
        for key, keys in entry.details.get("moved", {}).items():
            column = columns.get(key)
            if column is None:
                raise MergeConflict(f"{key} no longer points at customers.")
            moved_back[key] = _move(column, keep_id, drop_id, keys)
        drop.status = changes.get("status", {}).get("before", drop.status)
        drop.is_active = changes.get("is_active", {}).get("before", True)
        drop.merged_into = None
        db.session.flush()
        db.session.expire(drop, ["contacts"])
        audit.record(
            UNMERGE_ACTION,
            entity="customers",
            entity_id=drop.id,
            before=before,
            after=_snapshot(drop),
            details={"merge_entry": entry.id, "keep_id": keep_id, "moved_back": moved_back},
        )
        return drop

    return committed(work)


# --- GDPR -----------------------------------------------------------------------------


def _person(customer: Customer) -> PersonRef:
    return PersonRef(keys={"customer_id": customer.id})


def export(customer_id: int, *, user: Any = None) -> dict[str, Any]:
    """Everything held about the customer, decrypted (core.gdpr; audited as gdpr.export)."""
    authorize(gdpr.EXPORT_PERMISSION, user)
    return gdpr.export(_person(queries.get(customer_id, user)), user=user)


def erase(customer_id: int, *, user: Any = None) -> dict[str, int]:
    """GDPR erasure of the customer (core.gdpr; audited as gdpr.erase)."""
    authorize(gdpr.ERASE_PERMISSION, user)
    if not 0 < customer_id <= queries.INT_MAX:
        raise scope.OutOfReach()
    customer = scope.get_or_404(Customer, customer_id, user=user)
    return gdpr.erase(_person(customer), user=user)


# --- The identity index ---------------------------------------------------------------


def identity_backfill(*, batch: int = BACKFILL_BATCH) -> int:
    """Give every person who has none their identity index (models.identity_value):
    rows written before the column existed (migration 0012 cannot compute it: the key
    is the application's), or by a bulk write that left it out. Commits every `batch`
    rows; returns how many were filled. Not audited: a derived column, as sort_name.

    Rows are locked as they are read (others skipped, and found on the next run), and
    one that got an index meanwhile (an update through the ORM) is left as it is.
    """
    table = Customer.__table__
    fill = (
        sql_update(table)
        .where(table.c.id == bindparam("row_id"), table.c.identity_index.is_(None))
        .values(identity_index=bindparam("identity"))
    )
    filled, unfit = 0, set[int]()  # unfit: no identity to give (a name missing)
    while True:
        rows = db.session.execute(
            select(Customer.id, Customer.first_name, Customer.last_name, Customer.date_of_birth)
            .where(
                Customer.identity_index.is_(None),
                Customer.date_of_birth.is_not(None),
                Customer.id.not_in(sorted(unfit)),
            )
            # The order of ix_customers_unindexed_names (whose condition this is):
            # read from it, however many rows PostgreSQL guesses are left. Filled rows
            # leave it, so each batch reads the next ones.
            .order_by(func.lower(Customer.first_name), func.lower(Customer.last_name))
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return filled
        params = []
        for row in rows:
            identity = identity_value(row.first_name, row.last_name, row.date_of_birth)
            if identity is None:
                unfit.add(row.id)
            else:
                params.append({"row_id": row.id, "identity": identity})
        if params:
            db.session.execute(fill, params)
        db.session.commit()
        filled += len(params)


@jobs.periodic(BACKFILL_JOB, every=24 * 3600)
def identity_backfill_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """Daily, per tenant: identity_backfill. Once every row has its index, one query
    of an empty partial index (ix_customers_unindexed_names)."""
    return {"filled": identity_backfill()}
