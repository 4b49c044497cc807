"""Envelope encryption per tenant: data keys wrapped by a master key (docs/personal-data.md).

- The master key (`MASTER_KEY`, any long secret) never encrypts data. HKDF-SHA256
  derives a 256-bit key-encryption key (KEK) from it; the KEK wraps each tenant's data
  keys with AES-GCM. `MASTER_KEY_PREVIOUS` is accepted for unwrapping only, while
  `powerbuyer keys rotate` re-wraps everything under the current one.
- Each tenant has random 256-bit keys in its own `data_keys` table: one active `data`
  key (new writes; retired ones still decrypt, chosen by the key id in the ciphertext)
  and one `index` key for blind indexes and pseudonyms (never replaced: every blind
  index would change).
- Ciphertext: `v1:<kid>:<base64url(nonce | ciphertext | tag)>`, AES-256-GCM, 96-bit
  random nonce, associated data `pb:v1:<tenant slug>:<context>:<kid>` where the
  context is `<table>.<column>`. A value moved to another column or another tenant, or
  altered by one bit, fails to decrypt.
- Unwrapped keys are cached in this process only (never Redis) for CACHE_SECONDS, then
  read again, so a rotation made elsewhere is seen within that time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Engine,
    Index,
    LargeBinary,
    String,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import NullPool

from core.db import Base, db, scope_connection
from core.tenancy import Tenant, require_tenant, tenant_context

FORMAT = "v1"
DATA, INDEX = "data", "index"
ACTIVE, RETIRED = "active", "retired"
NONCE_BYTES = 12
KEY_BYTES = 32
# How long this process trusts its copy of a tenant's keys before reading them again.
CACHE_SECONDS = 300.0


class DecryptionError(ValueError):
    """A ciphertext is malformed, altered, or belongs to another tenant or column."""


class KeyUnavailable(RuntimeError):
    """A data key cannot be unwrapped with the configured master key(s)."""


class DataKey(Base):
    """One wrapped key of this tenant. Rows are never deleted (a trigger refuses it):
    losing a data key loses every value written under it."""

    __tablename__ = "data_keys"
    __table_args__ = (
        CheckConstraint("purpose IN ('data', 'index')", "purpose"),
        CheckConstraint("status IN ('active', 'retired')", "status"),
        # One key per purpose takes new writes; racing creators meet here.
        Index(
            "uq_data_keys_active_purpose",
            "purpose",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=ACTIVE)
    # nonce | AES-GCM(KEK, key) | tag
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    # Which master key wrapped it (fingerprint of its KEK, see master_key_id).
    master_kid: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- Master key ---------------------------------------------------------------------


@dataclass(frozen=True)
class Kek:
    kid: str
    key: bytes = field(repr=False)


@lru_cache(maxsize=8)
def derive_kek(master_key: str) -> Kek:
    """The 256-bit KEK of a master secret, and its id (a fingerprint safe to store)."""
    if not master_key:
        raise KeyUnavailable("MASTER_KEY is empty")
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=b"powerbuyer/master-key",
        info=b"powerbuyer/kek/v1",
    ).derive(master_key.encode())
    kid = hmac.new(key, b"powerbuyer/kek-id", hashlib.sha256).hexdigest()[:16]
    return Kek(kid, key)


def master_keks() -> tuple[Kek, dict[str, Kek]]:
    """The current KEK (wraps) and every accepted KEK by id (unwrap)."""
    current = derive_kek(current_app.config["MASTER_KEY"])
    accepted = {current.kid: current}
    previous = current_app.config.get("MASTER_KEY_PREVIOUS")
    if previous:
        old = derive_kek(previous)
        accepted.setdefault(old.kid, old)
    return current, accepted


def _wrap_aad(tenant: Tenant, purpose: str) -> bytes:
    return f"pb:key:v1:{tenant.slug}:{purpose}".encode()


def wrap(key: bytes, kek: Kek, tenant: Tenant, purpose: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek.key).encrypt(nonce, key, _wrap_aad(tenant, purpose))


def unwrap(row: Any, accepted: dict[str, Kek], tenant: Tenant) -> bytes:
    """Unwrap a `data_keys` row (ORM object or Core row) with whichever KEK wrapped it."""
    kid, master_kid = row.id, row.master_kid
    kek = accepted.get(master_kid)
    if kek is None:
        raise KeyUnavailable(
            f"data key {kid} of tenant {tenant.slug} is wrapped by master key {master_kid}, "
            "which is neither MASTER_KEY nor MASTER_KEY_PREVIOUS"
        )
    blob = bytes(row.wrapped)
    try:
        return AESGCM(kek.key).decrypt(
            blob[:NONCE_BYTES],
            blob[NONCE_BYTES:],
            _wrap_aad(tenant, row.purpose),
        )
    except InvalidTag as exc:
        raise KeyUnavailable(f"data key {kid} of tenant {tenant.slug} fails to unwrap") from exc


# --- A tenant's keys ----------------------------------------------------------------


@dataclass(frozen=True)
class Keyring:
    """A tenant's unwrapped keys, as cached by this process."""

    tenant: Tenant
    data: dict[int, bytes] = field(repr=False)
    active: int
    index: bytes = field(repr=False)
    loaded_at: float
    # Made once per key: making a cipher object costs as much as a decryption, keying
    # an HMAC as much as the hash (a page of customers decrypts a hundred values).
    _ciphers: dict[int, AESGCM] = field(init=False, repr=False, compare=False)
    _index_mac: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ciphers = {kid: AESGCM(key) for kid, key in self.data.items()}
        object.__setattr__(self, "_ciphers", ciphers)
        object.__setattr__(self, "_index_mac", hmac.new(self.index, digestmod=hashlib.sha256))

    def _aad(self, context: str, kid: int) -> bytes:
        return f"pb:{FORMAT}:{self.tenant.slug}:{context}:{kid}".encode()

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.active].encrypt(
            nonce, plaintext.encode(), self._aad(context, self.active)
        )
        payload = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{FORMAT}:{self.active}:{payload}"

    def decrypt(self, kid: int, blob: bytes, context: str) -> str:
        try:
            plain = self._ciphers[kid].decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(context, kid)
            )
        except InvalidTag as exc:
            raise DecryptionError(
                f"{context}: ciphertext was altered or belongs to another tenant or column"
            ) from exc
        return plain.decode()

    def keyed_hash(self, message: str) -> str:
        mac = self._index_mac.copy()
        mac.update(message.encode())
        return mac.hexdigest()


_cache: dict[tuple[str, int, str], Keyring] = {}
_cache_lock = threading.Lock()


def _cache_key(tenant: Tenant) -> tuple[str, int, str]:
    # Several apps (databases) may share a process in tests and tools.
    return (current_app.config["SQLALCHEMY_DATABASE_URI"], tenant.id, tenant.schema)


def _keys_engine() -> Engine:
    """A connection of its own, unpooled, for reading and creating keys.

    Keys are read in the middle of someone else's transaction (a flush, a query) and
    created once per tenant in a transaction that must commit at once, whatever the
    caller's does: a key cached from a rolled-back insert would encrypt data that
    nobody could ever decrypt. Unpooled, so a cache miss can never wait for a pool
    that the callers themselves exhaust.
    """
    engine = current_app.extensions.get("powerbuyer.keys_engine")
    if engine is None:
        engine = create_engine(db.engine.url, poolclass=NullPool)
        current_app.extensions["powerbuyer.keys_engine"] = engine
    return engine


def _load(tenant: Tenant) -> Keyring:
    table = DataKey.__table__
    current, accepted = master_keks()
    with _keys_engine().begin() as conn:
        scope_connection(conn, tenant)
        rows = conn.execute(select(table)).all()
        missing = {DATA, INDEX} - {r.purpose for r in rows if r.status == ACTIVE}
        for purpose in sorted(missing):
            conn.execute(
                insert(table)
                .values(
                    purpose=purpose,
                    status=ACTIVE,
                    wrapped=wrap(os.urandom(KEY_BYTES), current, tenant, purpose),
                    master_kid=current.kid,
                )
                .on_conflict_do_nothing(
                    index_elements=["purpose"], index_where=table.c.status == ACTIVE
                )
            )
        if missing:
            rows = conn.execute(select(table)).all()
    keys = {row.id: unwrap(row, accepted, tenant) for row in rows}
    active = {row.purpose: row.id for row in rows if row.status == ACTIVE}
    return Keyring(
        tenant=tenant,
        data={row.id: keys[row.id] for row in rows if row.purpose == DATA},
        active=active[DATA],
        index=keys[active[INDEX]],
        loaded_at=time.monotonic(),
    )


def keyring(tenant: Tenant | None = None, *, reload: bool = False) -> Keyring:
    """The keys of `tenant` (default: the current one), from the cache when fresh.

    The first use for a tenant creates its keys. Needs an app context.
    """
    tenant = tenant or require_tenant()
    key = _cache_key(tenant)
    ring = _cache.get(key)  # one dict read: atomic, no lock needed (writes take it)
    if ring is not None and not reload and time.monotonic() - ring.loaded_at < CACHE_SECONDS:
        return ring
    ring = _load(tenant)
    with _cache_lock:
        _cache[key] = ring
    return ring


def forget(tenant: Tenant | None = None) -> None:
    """Drop cached keys: of one tenant, or all (after a rotation, in tests)."""
    with _cache_lock:
        if tenant is None:
            _cache.clear()
        else:
            for key in [k for k in _cache if k[1:] == (tenant.id, tenant.schema)]:
                del _cache[key]


# --- Values -------------------------------------------------------------------------


def encrypt(plaintext: str, context: str) -> str:
    """Encrypt for the current tenant, bound to `context` (`<table>.<column>`)."""
    return keyring().encrypt(plaintext, context)


def decrypt(token: str, context: str) -> str:
    """Decrypt a value of the current tenant written for `context`."""
    kid, blob = _parse(token, context)
    ring = keyring()
    if kid not in ring.data:
        # Written under a data key created (rotation) after this process cached its keys.
        ring = keyring(reload=True)
        if kid not in ring.data:
            raise DecryptionError(f"{context}: unknown data key {kid} for this tenant")
    return ring.decrypt(kid, blob, context)


def _parse(token: str, context: str) -> tuple[int, bytes]:
    parts = token.split(":")
    if len(parts) != 3 or parts[0] != FORMAT or not parts[1].isdigit():
        raise DecryptionError(f"{context}: not a {FORMAT} ciphertext")
    try:
        # validate: a lenient decoder would skip stray characters, so that two
        # different strings would decrypt to one value.
        blob = base64.b64decode(parts[2] + "=" * (-len(parts[2]) % 4), b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError(f"{context}: ciphertext is not base64url") from exc
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionError(f"{context}: ciphertext too short")
    return int(parts[1]), blob


def keyed_hash(message: str) -> str:
    """HMAC-SHA256 of `message` under the current tenant's index key, hex.

    Blind indexes and erasure pseudonyms use it: equal inputs give equal outputs within
    one tenant, and nobody without the key can test a guess.
    """
    return keyring().keyed_hash(message)


# --- Rotation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    rewrapped: int
    master_kid: str
    new_data_key: int | None


def rotate(tenant: Tenant, *, new_data_key: bool = False) -> Rotation:
    """Re-wrap every key of `tenant` under the current master key; with `new_data_key`
    also retire the active data key and create a new one for new writes (values written
    under retired keys still decrypt). One transaction, audited as `keys.rotate`.

    Needs an app context; runs in `tenant`'s context on db.session.
    """
    # core.audit imports the user model, whose columns are tagged with core.security.pii,
    # which imports this module: importing audit at the top would close that circle.
    from core import audit

    current, accepted = master_keks()
    with tenant_context(tenant):
        try:
            rows = db.session.scalars(select(DataKey).order_by(DataKey.id).with_for_update()).all()
            previous_kids = sorted({row.master_kid for row in rows})
            for row in rows:
                key = unwrap(row, accepted, tenant)
                row.wrapped = wrap(key, current, tenant, row.purpose)
                row.master_kid = current.kid
                row.rotated_at = func.now()
            created = None
            if new_data_key:
                for row in rows:
                    if row.purpose == DATA and row.status == ACTIVE:
                        row.status = RETIRED
                # The retirement must reach the database before the new active key.
                db.session.flush()
                fresh = DataKey(
                    purpose=DATA,
                    status=ACTIVE,
                    wrapped=wrap(os.urandom(KEY_BYTES), current, tenant, DATA),
                    master_kid=current.kid,
                )
                db.session.add(fresh)
                db.session.flush()
                created = fresh.id
            audit.record(
                "keys.rotate",
                entity="data_keys",
                details={
                    "rewrapped": len(rows),
                    "master_kid": current.kid,
                    "previous_master_kids": previous_kids,
                    "new_data_key": created,
                },
            )
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    forget(tenant)
    return Rotation(len(rows), current.kid, created)
