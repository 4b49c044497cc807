"""The per-test transaction: what a test writes is gone after it, even if it commits."""

from __future__ import annotations

import uuid

from flask import Flask
from sqlalchemy import func, select

from core.db import db
from core.jobs import Job
from core.tenancy import Tenant
from tests.conftest import rolled_back_session

MARK = f"rollback-probe-{uuid.uuid4().hex}"


def _count(app: Flask, tenant: Tenant) -> int:
    with rolled_back_session(app, tenant):
        return db.session.scalar(select(func.count()).select_from(Job).where(Job.type == MARK))


def test_writes_and_commits_inside_the_test_are_rolled_back(app: Flask, alpha: Tenant):
    with rolled_back_session(app, alpha):
        db.session.add(Job(type=MARK, payload={}))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Job).where(Job.type == MARK)) == 1
    assert _count(app, alpha) == 0


def test_the_rolled_back_session_is_scoped_to_its_tenant(alpha_db: None, alpha: Tenant):
    assert db.session.scalar(select(func.current_user())) == alpha.role
