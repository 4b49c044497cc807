"""Envelope encryption (core/security/crypto.py): the ciphertext format, refusal of altered
or foreign ciphertexts, keys stored wrapped, and rotation of data and master keys."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

import core.models  # noqa: F401  (every tenant table on Base.metadata)
from core.audit import AuditEntry
from core.db import Base, db, scope_connection
from core.security import crypto
from core.security.crypto import DataKey, DecryptionError, KeyUnavailable
from core.tenancy import Tenant, tenant_context
from tests.core.jobs_support import worker_env
from tests.security.pii_support import scratch_tenant

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = "pii_people.national_id"
TOKEN_RE = re.compile(r"v1:(\d+):([A-Za-z0-9_-]+)")


def test_a_ciphertext_is_versioned_names_its_key_and_never_repeats(app: Flask, alpha: Tenant):
    with app.app_context(), tenant_context(alpha):
        one = crypto.encrypt("123-45-6789", CONTEXT)
        two = crypto.encrypt("123-45-6789", CONTEXT)
        ring = crypto.keyring()

    match = TOKEN_RE.fullmatch(one)
    assert match, one
    assert int(match[1]) == ring.active
    # 12-byte nonce + 11 bytes of text + 16-byte tag = 39 bytes = 52 base64url characters.
    assert len(match[2]) == 52
    assert one != two, "a fresh nonce per value"
    assert "6789" not in one
    with app.app_context(), tenant_context(alpha):
        assert crypto.decrypt(one, CONTEXT) == "123-45-6789"
        assert crypto.decrypt(two, CONTEXT) == "123-45-6789"


def test_an_altered_or_malformed_ciphertext_does_not_decrypt(app: Flask, alpha: Tenant):
    with app.app_context(), tenant_context(alpha):
        token = crypto.encrypt("a secret", CONTEXT)
        head, kid, payload = token.split(":")
        flipped = payload[:20] + ("A" if payload[20] != "A" else "B") + payload[21:]
        altered = [
            f"{head}:{kid}:{flipped}",  # one bit of the ciphertext
            f"{head}:{kid}:{payload[:-3]}",  # truncated tag
            f"{head}:{kid}:{payload}!",  # a stray character a lenient decoder would skip
            f"v2:{kid}:{payload}",
            f"{head}:999999:{payload}",  # a key this tenant does not have
            "a secret",
        ]
        for bad in altered:
            with pytest.raises(DecryptionError):
                crypto.decrypt(bad, CONTEXT)
        # Moved to another column: the associated data names the column.
        with pytest.raises(DecryptionError, match=r"pii_people\.date_of_birth"):
            crypto.decrypt(token, "pii_people.date_of_birth")
        assert crypto.decrypt(token, CONTEXT) == "a secret"


def test_a_ciphertext_of_another_tenant_does_not_decrypt(app: Flask, alpha: Tenant, beta: Tenant):
    with app.app_context():
        with tenant_context(alpha):
            token = crypto.encrypt("alpha's secret", CONTEXT)
        kid = int(token.split(":")[1])
        with tenant_context(beta):
            # beta has a key with the same id: the refusal comes from the key and the
            # tenant bound into the ciphertext, not from a missing key.
            assert kid in crypto.keyring().data
            with pytest.raises(DecryptionError, match="another tenant"):
                crypto.decrypt(token, CONTEXT)


def test_data_keys_are_stored_wrapped_by_the_master_key(app: Flask, alpha: Tenant, beta: Tenant):
    kek = crypto.derive_kek(app.config["MASTER_KEY"])
    with app.app_context(), tenant_context(alpha):
        ring = crypto.keyring()
        rows = db.session.scalars(select(DataKey).order_by(DataKey.id)).all()
        db.session.expunge_all()
    assert {(row.purpose, row.status) for row in rows} >= {("data", "active"), ("index", "active")}
    for row in rows:
        plain = ring.data.get(row.id, ring.index)
        assert len(plain) == 32
        assert plain not in bytes(row.wrapped)
        assert len(row.wrapped) == 12 + 32 + 16
        assert row.master_kid == kek.kid
    # A wrapped key copied into another tenant's table does not unwrap there.
    _, accepted = (kek, {kek.kid: kek})
    assert crypto.unwrap(rows[0], accepted, alpha) == ring.data.get(rows[0].id, ring.index)
    with pytest.raises(KeyUnavailable, match="fails to unwrap"):
        crypto.unwrap(rows[0], accepted, beta)


def test_the_master_key_id_is_a_fingerprint_not_the_key():
    kek = crypto.derive_kek("some long master secret")
    assert re.fullmatch(r"[0-9a-f]{16}", kek.kid)
    assert kek.kid != crypto.derive_kek("another long master secret").kid
    assert kek.kid not in kek.key.hex()


def test_the_database_refuses_to_delete_a_data_key(app: Flask, alpha: Tenant, alpha_db: None):
    crypto.keyring()
    with pytest.raises(DBAPIError, match="data keys are never deleted"):
        db.session.execute(text("DELETE FROM data_keys"))


def test_migration_0005_creates_the_tables_the_models_declare(app: Flask, alpha: Tenant):
    mine = {"data_keys", "retention_policies"}

    def include(obj, name, type_, reflected, compare_to) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or table.name in mine

    with app.app_context(), db.engine.begin() as conn:
        scope_connection(conn, alpha)
        context = MigrationContext.configure(
            conn,
            opts={"include_object": include, "compare_type": True, "compare_server_default": True},
        )
        # A missing table would show as "add_table", a different column as a change.
        assert compare_metadata(context, Base.metadata) == []


def _powerbuyer(app_config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "powerbuyer"), *args]
    return subprocess.run(
        command, cwd=ROOT, env=worker_env(app_config), capture_output=True, text=True, timeout=120
    )


def test_a_new_data_key_takes_new_writes_and_old_values_stay_readable(
    app: Flask, app_config: dict, monkeypatch: pytest.MonkeyPatch
):
    with scratch_tenant(app, "keyrot") as tenant:
        with app.app_context(), tenant_context(tenant):
            before = crypto.encrypt("written before the rotation", CONTEXT)
            stale = crypto.keyring()

        # The real command, in a process of its own.
        done = _powerbuyer(app_config, "keys", "rotate", "--tenant", tenant.slug, "--new-data-key")
        assert done.returncode == 0, done.stderr
        new_kid = int(re.search(r"new data key (\d+) for new writes", done.stdout)[1])
        assert new_kid != stale.active

        with app.app_context(), tenant_context(tenant):
            status = dict(db.session.execute(select(DataKey.id, DataKey.status)).all())
            assert status[stale.active] == "retired"
            assert status[new_kid] == "active"
            # This process trusts its cached keys for CACHE_SECONDS: it still writes
            # under the old key, which stays valid.
            assert crypto.encrypt("still cached", CONTEXT).split(":")[1] == str(stale.active)

            # A process whose cache predates the rotation reads a value written under
            # the new key: the unknown key id makes it read the keys again.
            written_elsewhere = crypto.keyring(reload=True).encrypt("new key", CONTEXT)
            monkeypatch.setitem(crypto._cache, crypto._cache_key(tenant), stale)
            assert crypto.decrypt(written_elsewhere, CONTEXT) == "new key"

            monkeypatch.setattr(crypto, "CACHE_SECONDS", 0.0)
            after = crypto.encrypt("written after the rotation", CONTEXT)
            assert after.split(":")[1] == str(new_kid)
            assert crypto.decrypt(before, CONTEXT) == "written before the rotation"
            assert crypto.decrypt(after, CONTEXT) == "written after the rotation"

            entries = db.session.scalars(
                select(AuditEntry).where(AuditEntry.action == "keys.rotate")
            ).all()
        assert len(entries) == 1
        assert entries[0].actor == "cli:keys-rotate"
        assert entries[0].details["new_data_key"] == new_kid
        assert entries[0].details["rewrapped"] == 2
        crypto.forget(tenant)


def test_master_key_rotation_rewraps_every_key(app: Flask, monkeypatch: pytest.MonkeyPatch):
    old_master = app.config["MASTER_KEY"]
    new_master = "the next master key, long and random enough"
    old_kid, new_kid = crypto.derive_kek(old_master).kid, crypto.derive_kek(new_master).kid
    runner = app.test_cli_runner()

    def master_kids(tenant: Tenant) -> set[str]:
        with app.app_context(), tenant_context(tenant):
            return set(db.session.scalars(select(DataKey.master_kid)))

    with scratch_tenant(app, "masterrot") as tenant:
        with app.app_context(), tenant_context(tenant):
            token = crypto.encrypt("kept across master keys", CONTEXT)
        assert master_kids(tenant) == {old_kid}

        monkeypatch.setitem(app.config, "MASTER_KEY", new_master)
        crypto.forget(tenant)
        # Without the previous master key nothing can be unwrapped: refused, unchanged.
        refused = runner.invoke(args=["keys", "rotate", "--tenant", tenant.slug])
        assert refused.exit_code == 1
        assert "MASTER_KEY_PREVIOUS" in refused.output
        assert "nothing was changed" in refused.output
        assert master_kids(tenant) == {old_kid}

        monkeypatch.setitem(app.config, "MASTER_KEY_PREVIOUS", old_master)
        rotated = runner.invoke(args=["keys", "rotate", "--tenant", tenant.slug])
        assert rotated.exit_code == 0, rotated.output
        assert f"2 key(s) wrapped under master key {new_kid}" in rotated.output
        assert master_kids(tenant) == {new_kid}

        # The previous master key can now be retired ...
        monkeypatch.setitem(app.config, "MASTER_KEY_PREVIOUS", None)
        crypto.forget(tenant)
        with app.app_context(), tenant_context(tenant):
            assert crypto.decrypt(token, CONTEXT) == "kept across master keys"

        # ... and it no longer opens anything.
        monkeypatch.setitem(app.config, "MASTER_KEY", old_master)
        crypto.forget(tenant)
        with app.app_context(), tenant_context(tenant), pytest.raises(KeyUnavailable):
            crypto.keyring()
    crypto.forget(tenant)


def test_rotating_an_unknown_tenant_fails(app: Flask):
    result = app.test_cli_runner().invoke(args=["keys", "rotate", "--tenant", "nosuchtenant"])
    assert result.exit_code == 1
    assert "no tenant with slug 'nosuchtenant'" in result.output
