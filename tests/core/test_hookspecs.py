"""The hook specifications are documented, typed stubs, and the guide names them all
(in the spirit of datasette's test_plugin_hooks_have_tests)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from core import hookspecs

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
SPEC_MARK = f"{hookspecs.PROJECT}_spec"

HOOKS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, SPEC_MARK))

# The families ARCHITECTURE.md section 4 requires, each with the hooks that serve it.
FAMILIES = {
    "product lines and rating": {"powerbuyer_product_lines", "powerbuyer_compute_premium"},
    "payment gateways": {
        "powerbuyer_payment_gateways",
        "powerbuyer_create_payment_request",
        "powerbuyer_parse_webhook",
    },
    "verification": {
        "powerbuyer_verification_services",
        "powerbuyer_verify_identity",
        "powerbuyer_check_credit",
    },
    "notification channels": {"powerbuyer_notification_channels", "powerbuyer_send_message"},
    "fraud rules": {"powerbuyer_fraud_rules", "powerbuyer_fraud_flags"},
    "document storage": {
        "powerbuyer_document_stores",
        "powerbuyer_store_document",
        "powerbuyer_fetch_document",
        "powerbuyer_delete_document",
    },
    "screens and menus": {"powerbuyer_blueprints", "powerbuyer_menu_items"},
    "job types": {"powerbuyer_job_types"},
    "start-up": {"powerbuyer_startup"},
}


def _stubs() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("powerbuyer_")
    }


def test_every_family_has_its_hooks():
    missing = {family: hooks - set(HOOKS) for family, hooks in FAMILIES.items()}
    assert not {family: hooks for family, hooks in missing.items() if hooks}


def test_every_powerbuyer_function_is_a_marked_hook():
    assert sorted(_stubs()) == HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_docstring(name: str):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc) > 20, f"{name} needs a docstring that specifies it"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_named_in_the_plugin_guide(name: str):
    assert f"`{name}(" in GUIDE.read_text(), f"docs/plugins.md does not document {name}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_body_is_only_its_docstring(name: str):
    body = _stubs()[name].body
    assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{name} has code in its stub"
    assert isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_fully_typed(name: str):
    stub = _stubs()[name]
    untyped = [arg.arg for arg in stub.args.args if arg.annotation is None]
    assert not untyped, f"{name}: untyped arguments {untyped}"
    assert stub.returns is not None, f"{name} has no return type"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_does_not_take_tenant(name: str):
    # `tenant=` selects whose plugins a call reaches (core.plugins); a hook argument of
    # that name could never be passed. Plugins read the tenant from the context.
    assert "tenant" not in inspect.signature(getattr(hookspecs, name)).parameters


def test_tenant_scoped_hooks_are_actions_on_business():
    scoped = {
        name for name in HOOKS if getattr(getattr(hookspecs, name), hookspecs.TENANT_SCOPED, 0)
    }
    assert "powerbuyer_compute_premium" in scoped
    assert "powerbuyer_send_message" in scoped
    # Declarations and start-up run at platform level, with no tenant in context.
    assert not scoped & {"powerbuyer_product_lines", "powerbuyer_startup", "powerbuyer_job_types"}
