"""Personal data in models: column tags, the encrypted column type, blind indexes and
the masking rule (docs/personal-data.md).

    national_id: Mapped[str | None] = mapped_column(
        EncryptedString(), info=pii("sensitive", kind="national_id")
    )
    national_id_index: Mapped[str | None] = blind_index("national_id")
    email: Mapped[str] = mapped_column(String(255), info=pii("contact", kind="email"))

`"sensitive"` columns must be `EncryptedString` (a test checks every table); the GDPR
registry (core.gdpr) must cover every tagged column (another test). What a viewer sees
is decided here, once: `visible(value, kind, user, module=...)`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute, MappedColumn, Mapper, mapped_column
from sqlalchemy.sql import ColumnElement, operators
from sqlalchemy.types import TypeDecorator

from core.security import crypto
from core.security.authz import has_permission

CONTACT, SENSITIVE = "contact", "sensitive"
CATEGORIES = (CONTACT, SENSITIVE)
TAG = "pii"
BLIND_INDEX_OF = "blind_index_of"
HIDDEN = "****"

# What a viewer without the unmask permission sees, by kind of data. Kinds with rule
# "none" are shown to whoever may read the record at all (an agent needs the names
# and addresses of their customers).
MASK_RULES: dict[str, str] = {
    "national_id": "last4",
    "tax_id": "last4",
    "bank_account": "last4",
    "email": "email",
    "phone": "last3",
    "date_of_birth": "year",
    "health": "hidden",
    "name": "none",
    "address": "none",
    "ip_address": "none",
}
SENSITIVE_KINDS = frozenset({"national_id", "tax_id", "bank_account", "date_of_birth", "health"})

# The permission that shows a module's personal data unmasked. Customers' data, on
# whatever screen it appears, unmasks with customers:export, the permission to hand a
# person's complete data over (managers, admins; not agents). Staff data unmasks for
# those who manage staff.
UNMASK_PERMISSIONS: dict[str, str] = {
    "customers": "customers:export",
    "policies": "customers:export",
    "billing": "customers:export",
    "claims": "customers:export",
    "documents": "customers:export",
    "reports": "customers:export",
    "agents": "agents:update",
    "settings": "settings:update",
}


# --- Tags ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PiiTag:
    category: str
    kind: str | None = None
    # Erasure of a kept row: "pseudonym" (erased-<hash>) or "null". None: NOT NULL
    # columns get a pseudonym, nullable ones NULL.
    erase: str | None = None

    @property
    def sensitive(self) -> bool:
        return self.category == SENSITIVE


def pii(category: str = CONTACT, kind: str | None = None, *, erase: str | None = None) -> dict:
    """Column `info` marking personal data: `mapped_column(..., info=pii("contact", kind="email"))`.

    `sensitive` data (national id, tax id, bank account, date of birth, health answers)
    must be stored in an `EncryptedString` column.
    """
    if category not in CATEGORIES:
        raise ValueError(f"pii category must be one of {CATEGORIES}, not {category!r}")
    if kind is not None and kind not in MASK_RULES:
        raise ValueError(f"unknown pii kind {kind!r}; known: {', '.join(sorted(MASK_RULES))}")
    if category == SENSITIVE and kind not in SENSITIVE_KINDS:
        raise ValueError(f"sensitive pii needs a kind among {sorted(SENSITIVE_KINDS)}")
    if erase not in (None, "pseudonym", "null"):
        raise ValueError("erase must be 'pseudonym', 'null' or None")
    return {TAG: PiiTag(category, kind, erase)}


def tag_of(column: Column[Any]) -> PiiTag | None:
    return column.info.get(TAG)


def tag_columns(table: Table, **infos: dict) -> None:
    """Tag columns a model inherits from a library mixin (Flask-Security's users)."""
    for name, info in infos.items():
        table.c[name].info.update(info)


def tagged_columns(table: Table) -> list[tuple[Column[Any], PiiTag]]:
    return [(column, tag) for column in table.columns if (tag := tag_of(column)) is not None]


def problems(metadata: MetaData) -> list[str]:
    """Tagging mistakes in `metadata`: sensitive data stored in clear, encrypted columns
    without a tag, blind indexes over nothing."""
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            tag, where = tag_of(column), f"{table.name}.{column.name}"
            encrypted = isinstance(column.type, EncryptedString)
            if tag is not None and tag.sensitive and not encrypted:
                found.append(f"{where} is tagged sensitive but is not an EncryptedString")
            if encrypted and (tag is None or not tag.sensitive):
                found.append(f"{where} is an EncryptedString but not tagged pii('sensitive')")
            source = column.info.get(BLIND_INDEX_OF)
            if source is not None and not (
                source in table.c and isinstance(table.c[source].type, EncryptedString)
            ):
                found.append(f"{where} is a blind index of {source!r}, not an encrypted column")
    return found


# --- Encrypted columns --------------------------------------------------------------


class EncryptedString(TypeDecorator[str]):
    """A string encrypted on the way in and decrypted on the way out, with the current
    tenant's data key, bound to `<table>.<column>` (set when the column joins its table).

    Pin `context` to the old name when renaming a table or column: it is part of every
    ciphertext. SQL cannot compare ciphertexts (each has a random nonce); search an
    encrypted value through its blind index.
    """

    impl = Text
    cache_ok = True

    def __init__(self, context: str | None = None) -> None:
        super().__init__()
        self.context = context

    def _context(self) -> str:
        if self.context is None:
            raise TypeError("EncryptedString column used before it was attached to a table")
        return self.context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{self._context()}: EncryptedString takes str, not {type(value)}")
        return crypto.encrypt(value, self._context())

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.decrypt(value, self._context())

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        raise TypeError(f"{self._context()}: an encrypted value is never inlined into SQL")

    class comparator_factory(TypeDecorator.Comparator[str]):
        """Only IS [NOT] NULL: any other comparison of ciphertexts is silently wrong."""

        def operate(self, op: Any, *other: Any, **kwargs: Any) -> ColumnElement[Any]:
            if op not in (operators.is_, operators.is_not):
                raise TypeError(
                    f"encrypted column {self.expr} cannot be compared in SQL; "
                    "use its blind index (core.security.pii.blind_match)"
                )
            return super().operate(op, *other, **kwargs)

        def reverse_operate(self, op: Any, other: Any, **kwargs: Any) -> ColumnElement[Any]:
            raise TypeError(f"encrypted column {self.expr} cannot be compared in SQL")


@event.listens_for(Column, "after_parent_attach")
def _bind_context(column: Column[Any], table: Any) -> None:
    # A fresh type per column: an instance shared between columns must not carry one
    # column's context to another.
    if (
        isinstance(table, Table)
        and isinstance(column.type, EncryptedString)
        and column.type.context is None
    ):
        column.type = EncryptedString(f"{table.name}.{column.name}")


# --- Blind indexes ------------------------------------------------------------------


def blind_index(source: str) -> MappedColumn[Any]:
    """A column holding the keyed hash of encrypted column `source`'s normalised value.

    Kept up to date when `source` is assigned through the ORM; search with
    `blind_match(Model.source, value)`. Only for high-entropy identifiers (national id,
    tax id, account numbers): equal values have equal indexes.
    """
    return mapped_column(String(64), index=True, nullable=True, info={BLIND_INDEX_OF: source})


def normalise(value: str, kind: str | None) -> str:
    """One spelling per value, so "123-45 678" finds "12345678"."""
    text = unicodedata.normalize("NFKC", value).strip()
    if kind in ("national_id", "tax_id", "bank_account"):
        return re.sub(r"[\s\-./]", "", text).upper()
    if kind == "email":
        return text.lower()
    if kind == "phone":
        return ("+" if text.startswith("+") else "") + re.sub(r"\D", "", text)
    return " ".join(text.casefold().split())


def _as_column(source: InstrumentedAttribute[Any] | Column[Any]) -> Column[Any]:
    if isinstance(source, InstrumentedAttribute):
        return source.property.columns[0]  # type: ignore[attr-defined,no-any-return]
    return source


def index_value(source: InstrumentedAttribute[Any] | Column[Any], value: str) -> str:
    """The blind index of `value` for encrypted column `source` (current tenant)."""
    column = _as_column(source)
    tag = tag_of(column)
    context = column.type.context if isinstance(column.type, EncryptedString) else column.name
    return crypto.keyed_hash(f"bidx:{context}:{normalise(value, tag.kind if tag else None)}")


def index_column(source: InstrumentedAttribute[Any] | Column[Any]) -> Column[Any]:
    column = _as_column(source)
    for candidate in column.table.columns:
        if candidate.info.get(BLIND_INDEX_OF) == column.name:
            return candidate
    raise LookupError(f"{column.table.name}.{column.name} has no blind index")


def blind_match(
    source: InstrumentedAttribute[Any] | Column[Any], value: str
) -> ColumnElement[bool]:
    """WHERE clause: encrypted column `source` equals `value`, through its blind index."""
    return index_column(source) == index_value(source, value)


@event.listens_for(Mapper, "mapper_configured")
def _maintain_blind_indexes(mapper: Mapper[Any], cls: type) -> None:
    table = mapper.local_table
    for column in table.columns:
        source_name = column.info.get(BLIND_INDEX_OF)
        if source_name is None:
            continue
        source = table.c[source_name]
        index_key = mapper.get_property_by_column(column).key

        def set_index(
            target: Any, value: Any, old: Any, initiator: Any, source=source, key=index_key
        ) -> None:
            setattr(target, key, None if value is None else index_value(source, value))

        event.listen(getattr(cls, mapper.get_property_by_column(source).key), "set", set_index)


# --- Masking ------------------------------------------------------------------------


def mask(value: Any, kind: str | None) -> Any:
    """`value` as a viewer without the unmask permission sees it (MASK_RULES)."""
    if value is None or kind is None:
        return value
    rule = MASK_RULES.get(kind)
    if rule is None:
        raise ValueError(f"unknown pii kind {kind!r}")
    if rule == "none":
        return value
    if rule == "hidden":
        return HIDDEN
    if rule == "year":
        if isinstance(value, date):
            return str(value.year)
        year = re.match(r"\s*(\d{4})", str(value))
        return year.group(1) if year else HIDDEN
    text = str(value)
    if rule == "last4":
        compact = re.sub(r"\s", "", text)  # "GB29 NWBK ... 19": the last 4 that matter
        return HIDDEN + compact[-4:] if len(compact) > 4 else HIDDEN
    if rule == "last3":
        digits = re.sub(r"\D", "", text)
        return "***" + digits[-3:] if len(digits) > 3 else HIDDEN
    local, at, domain = text.rpartition("@")  # rule == "email"
    return f"{local[0]}***@{domain}" if at and local and domain else HIDDEN


def unmask_permission(module: str) -> str:
    try:
        return UNMASK_PERMISSIONS[module]
    except KeyError:
        raise ValueError(f"no unmask permission defined for module {module!r}") from None


def visible(
    value: Any, kind: str | None, user: Any, *, module: str = "customers", own: bool = False
) -> Any:
    """What `user` may see of `value`: plain with the module's unmask permission, or for
    their own record (`own`, the portal); masked otherwise. Screens, API serializers and
    exports all go through here."""
    if own or has_permission(user, unmask_permission(module)):
        return value
    return mask(value, kind)


def visible_values(
    table: Table, values: dict[str, Any], user: Any, *, module: str = "customers"
) -> dict[str, Any]:
    """`values` (column name -> value) of a row of `table` as `user` may see them."""
    return {
        name: visible(value, tag.kind, user, module=module)
        if name in table.c and (tag := tag_of(table.c[name])) is not None
        else value
        for name, value in values.items()
    }
