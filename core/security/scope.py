"""Object-level reach: which rows a caller may see. Everything else answers 404.

Permissions say what a caller may do to a kind of object; reach says which objects.
A row outside the caller's reach is reported as missing (404), never as forbidden,
so its existence does not leak. Modules declare the rule of a model once, and the
API, screens, exports and jobs all go through it:

    @scope.reach(Customer)
    def _customers(user):
        return scope.book(Customer.agent_id, user)

    customer = scope.get_or_404(Customer, customer_id)          # 404 outside the book
    rows = db.session.scalars(scope.scoped(select(Customer), Customer))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask_login import current_user
from sqlalchemy import ColumnElement, Select, bindparam, false, inspect, select, true
from werkzeug.exceptions import NotFound

from core import settings
from core.db import db
from core.security.authz import has_permission
from core.tenancy import require_tenant

T = TypeVar("T")

# Seeing every agent's book comes with seeing the agents themselves: managers and
# admins hold `agents:read`, agents do not. A tenant's custom role gets the same reach
# by the same grant, on the same roles screen.
WHOLE_BROKERAGE = "agents:read"
# Tenant setting that widens an agent's book to every customer ("own" or "all").
BOOK_SCOPE_SETTING = "agent_book_scope"

Rule = Callable[[Any], ColumnElement[bool]]
_RULES: dict[type, Rule] = {}


class OutOfReach(NotFound):
    """The object does not exist, or not for this caller: the two look the same."""

    description = "Nothing was found at this address."


def reach(model: type) -> Callable[[Rule], Rule]:
    """Declare `rule(user) -> SQL condition`: the rows of `model` that `user` may see.

    A rule may depend only on its caller's identity (user id or API client), whether
    they are signed in and active, the permissions they hold, and the tenant's
    BOOK_SCOPE_SETTING: its answer is remembered per those (`_caller_key`), so the SQL
    is built once per caller, not on every request. Anything else a rule needs must be
    in the SQL it returns (a subquery), never read while building it.
    """

    def register(rule: Rule) -> Rule:
        if model in _RULES and _RULES[model] is not rule:
            raise ValueError(f"{model.__name__} already has a reach rule")
        _RULES[model] = rule
        return rule

    return register


def forget(model: type) -> None:
    """Drop `model`'s rule (for tests that declare a throwaway model)."""
    _RULES.pop(model, None)


def _subject(user: Any) -> Any:
    if user is not None:
        return user
    # The user itself, not the proxy: remembered answers are keyed by its type.
    return current_user._get_current_object()  # type: ignore[attr-defined]


# Built conditions and statements, by what their rule may read of the caller (`reach`).
# SQL constructs are immutable, so one built for a caller serves all their requests.
_MEMO: dict[tuple[Any, ...], Any] = {}
_MEMO_MAX = 4096


def _permissions(subject: Any) -> frozenset[str] | None:
    scopes = getattr(subject, "scopes", None)  # an API client's token
    if isinstance(scopes, frozenset):
        return scopes
    held = getattr(subject, "permissions", None)  # a bearer user's (tokens.BearerUser)
    if isinstance(held, frozenset):
        return held
    held_permissions = getattr(subject, "held_permissions", None)  # a User
    return held_permissions() if callable(held_permissions) else None


def _caller_key(subject: Any) -> tuple[Any, ...] | None:
    """All a reach rule may read of its caller and tenant, hashable; None for a caller
    this cannot describe (nothing is remembered for them)."""
    if subject is None:
        return None
    if not getattr(subject, "is_authenticated", False):
        return (require_tenant().id, "anonymous")
    permissions = _permissions(subject)
    if permissions is None:
        return None
    return (
        require_tenant().id,
        type(subject),
        getattr(subject, "id", None),
        getattr(subject, "pk", None),
        bool(getattr(subject, "active", False)),
        permissions,
        settings.get(BOOK_SCOPE_SETTING),
    )


def _remember(key: tuple[Any, ...], value: Any) -> None:
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = value


def visible(model: type, user: Any = None) -> ColumnElement[bool]:
    """The SQL condition for `model`'s rows `user` (default: current user) may see."""
    rule = _RULES.get(model)
    if rule is None:
        return true()
    subject = _subject(user)
    caller = _caller_key(subject)
    if caller is None:
        return rule(subject)
    key = ("visible", model, rule, caller)
    condition = _MEMO.get(key)
    if condition is None:
        condition = rule(subject)
        _remember(key, condition)
    return condition


def scoped(statement: Select[Any], model: type, user: Any = None) -> Select[Any]:
    """`statement` narrowed to the rows of `model` within the caller's reach."""
    return statement.where(visible(model, user))


def built_once(
    name: str, build: Callable[[ColumnElement[bool]], T], model: type, user: Any = None
) -> T:
    """`build(visible(model, user))`, built once per caller (`_caller_key`) and `name`.

    For a statement a request runs every time, with its values as bind parameters:
    building it and hashing it into SQLAlchemy's cache key then happen once, not on
    every call (the key is memoized on the statement object). `build` receives the
    reach condition and may put it anywhere (the WHERE of an INSERT's SELECT).
    """
    subject = _subject(user)
    caller = _caller_key(subject)
    if caller is None:
        return build(visible(model, subject))
    key = ("built", name, model, _RULES.get(model), caller)
    built = _MEMO.get(key)
    if built is None:
        built = build(visible(model, subject))
        _remember(key, built)
    return built


def scoped_once(
    name: str, build: Callable[[], Select[Any]], model: type, user: Any = None
) -> Select[Any]:
    """`scoped(build(), model, user)`, built once per caller and `name` (`built_once`)."""
    return built_once(name, lambda condition: build().where(condition), model, user)


def get_or_404(
    model: type[T],
    ident: Any,
    *,
    visible_if: ColumnElement[bool] | Callable[[T], bool] | None = None,
    user: Any = None,
    active_only: bool = False,
    lock: bool = False,
) -> T:
    """The row of `model` with primary key `ident`, if the caller may see it.

    The model's reach rule applies in the query, so an out-of-reach row is never
    loaded. `visible_if` narrows further for one call site: a SQL condition, or a
    predicate on the loaded object. `active_only` leaves out soft-deleted rows
    (`is_active` false). Raises OutOfReach (404) otherwise. `lock` takes the row's lock
    (FOR UPDATE) in the same query, and reads it afresh.

    The statement is built once per caller (`_caller_key`) unless `visible_if` is SQL,
    which callers build afresh on every call.
    """
    keys = inspect(model).primary_key
    if len(keys) != 1:
        raise TypeError(f"{model.__name__} has a composite primary key")
    subject = _subject(user)
    condition = visible_if if isinstance(visible_if, ColumnElement) else None

    def build() -> Select[Any]:
        statement = select(model).where(keys[0] == bindparam("pb_ident"))
        if active_only:
            statement = statement.where(model.is_active.is_(True))  # type: ignore[attr-defined]
        if condition is not None:
            statement = statement.where(condition)
        if lock:
            # FOR UPDATE OF the model's table only: the reach rule's subqueries lock nothing.
            statement = statement.with_for_update(of=model).execution_options(
                populate_existing=True
            )
        return statement

    if condition is None:
        statement = scoped_once(f"get:{active_only}:{lock}", build, model, subject)
    else:
        statement = scoped(build(), model, subject)
    found = db.session.scalars(statement, {"pb_ident": ident}).one_or_none()
    if found is None or (callable(visible_if) and not visible_if(found)):
        raise OutOfReach()
    return found


def owned_by(column: Any, user: Any = None) -> ColumnElement[bool]:
    """Rows whose `column` holds the caller's user id (a customer's own records)."""
    subject = _subject(user)
    if not getattr(subject, "is_authenticated", False) or getattr(subject, "id", None) is None:
        return false()
    return column == subject.id


def sees_whole_book(user: Any = None) -> bool:
    """True if the caller's reach is every customer of the brokerage, not a book."""
    subject = _subject(user)
    if has_permission(subject, WHOLE_BROKERAGE):
        return True
    return bool(getattr(subject, "is_authenticated", False)) and (
        settings.get(BOOK_SCOPE_SETTING) == "all"
    )


def book(agent_column: Any, user: Any = None) -> ColumnElement[bool]:
    """An agent's book: rows whose `agent_column` is the caller, unless the caller
    sees the whole brokerage (their grants, or the tenant's `agent_book_scope`)."""
    return true() if sees_whole_book(user) else owned_by(agent_column, user)
