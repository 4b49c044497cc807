"""The quote screen: a customer's risk priced live as the broker types, options compared
side by side, and the saved quote with its breakdown.

- `GET /customers/<id>/quotes/new?product=<line>`: the form, its fields from the
  product's declared risk fields (core.hookspecs.RiskField), each named `risk.<field>`
  as core.products.rating names them in errors.
- `POST /customers/<id>/quotes/preview`: htmx posts the form here 400 ms after the
  last keystroke; the answer is the premium and its breakdown (the trace's steps), and
  each field's error message swapped out of band beside its input. Nothing written.
- `POST /customers/<id>/quotes/compare`: the premium for each option of the line's
  comparison field (each voluntary deductible for motor, a few sums assured for life),
  each computed by `preview`.
- `POST /customers/<id>/quotes`: saves the quote and goes to its page, or the form
  again with its errors (422).
- `GET /quotes/<id>`: the quote, its trace, and Bind when the policies screens exist.

A customer or quote outside the caller's reach is 404 (core.security.scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import NotFound
from werkzeug.routing import BuildError

from core.customers import queries as customer_queries
from core.hookspecs import ProductLine, RiskField
from core.policies import quotes
from core.products import lines
from core.products import queries as product_queries
from core.products.rating import Rated
from core.products.rules import Errors, RatingRefused
from core.security.authz import has_permission, requires
from web import hosts

bp = Blueprint("quotes", __name__)

PREFIX = "risk."
PREVIEW_ID = "quote-preview"
COMPARE_ID = "quote-compare"
BIND_ENDPOINT = "policies.bind"
# The field whose options are compared side by side, by line; other lines compare
# their first field with choices.
COMPARE_FIELDS = {"motor_private_car": "voluntary_deductible", "term_life": "sum_assured"}
# Sums assured shown beside the one entered (money fields without choices).
SUM_OPTIONS = tuple(Decimal(x) for x in ("50000", "100000", "250000", "500000", "1000000"))
COMPARE_MAX = 6


@dataclass(frozen=True)
class Option:
    value: str
    rated: Rated | None
    errors: Errors
    current: bool


def _line(code: str | None) -> lines.DeclaredLine:
    """An enabled product's line, or 404 (the screen offers only those)."""
    declared = lines.get(code) if code else None
    product = product_queries.by_line(code) if code else None
    if declared is None or product is None or not product.is_active:
        raise NotFound("This product is not on sale here.")
    return declared


def quotable_products() -> list[tuple[str, str]]:
    """(line code, product name) of the products on sale, for links and menus."""
    declared = lines.declared()
    return [
        (product.line_code, product.name)
        for product in product_queries.products(active_only=True)
        if product.line_code in declared
    ]


def _risk(form: MultiDict[str, str]) -> dict[str, Any]:
    return {key[len(PREFIX) :]: value for key, value in form.items() if key.startswith(PREFIX)}


def _values(form: MultiDict[str, str]) -> dict[str, str]:
    return {key: value for key, value in form.items() if key != "csrf_token"}


def _field_names(line: ProductLine) -> list[str]:
    return [PREFIX + field.name for field in line.risk_fields]


def _form(
    customer_id: int,
    declared: lines.DeclaredLine,
    values: dict[str, str],
    errors: Errors,
    status: int = 200,
    rated: Rated | None = None,
) -> tuple[str, int]:
    customer = customer_queries.brief(customer_queries.get(customer_id))
    return (
        render_template(
            "quotes/new.html",
            customer=customer,
            line=declared.line,
            values=values,
            errors=errors,
            rated=rated,
            prefix=PREFIX,
            preview_id=PREVIEW_ID,
            compare_id=COMPARE_ID,
            compare_field=_compare_field(declared.line),
            field_names=["start_date", *_field_names(declared.line)],
        ),
        status,
    )


@bp.get("/customers/<int:customer_id>/quotes/new")
@requires("policies:create")
def new(customer_id: int) -> ResponseReturnValue:
    customer_queries.get(customer_id)  # 404 outside the caller's reach
    code = request.args.get("product")
    if not code:
        customer = customer_queries.brief(customer_queries.get(customer_id))
        return render_template(
            "quotes/choose.html", customer=customer, products=quotable_products()
        )
    declared = _line(code)
    values = {"start_date": date.today().isoformat()}
    return _form(customer_id, declared, values, {})


def _preview(form: MultiDict[str, str]) -> tuple[Rated | None, Errors]:
    try:
        return quotes.preview(form.get("product", ""), form.get("start_date", ""), _risk(form)), {}
    except RatingRefused as refused:
        return None, refused.errors


@bp.post("/customers/<int:customer_id>/quotes/preview")
@requires("policies:create")
def preview(customer_id: int) -> ResponseReturnValue:
    customer_queries.get(customer_id)
    declared = _line(request.form.get("product"))
    rated, errors = _preview(request.form)
    names = ["start_date", *_field_names(declared.line)]
    # While the broker is still typing, a field not filled in yet is not an error to
    # flag beside it: the panel lists what is missing instead.
    blank = {name for name in names if not request.form.get(name, "").strip()}
    labels = {PREFIX + field.name: field.label for field in declared.line.risk_fields}
    missing = [labels.get(name, "start date") for name in names if name in blank and name in errors]
    return render_template(
        "quotes/_preview.html",
        rated=rated,
        errors={name: messages for name, messages in errors.items() if name not in blank},
        shown={name: messages for name, messages in errors.items() if name not in blank},
        missing=missing,
        field_names=names,
        preview_id=PREVIEW_ID,
        oob=True,
    ), (200 if rated else 422)


def _compare_field(line: ProductLine) -> RiskField | None:
    wanted = COMPARE_FIELDS.get(line.code)
    for field in line.risk_fields:
        if field.name == wanted or (wanted is None and field.choices):
            return field
    return None


def _options(field: RiskField, entered: str) -> list[str]:
    if field.choices:
        return list(field.choices)[:COMPARE_MAX]
    try:
        amount = Decimal(entered.replace(",", "").strip())
    except InvalidOperation:
        amount = None
    options = set(SUM_OPTIONS)
    if amount is not None and amount.is_finite() and amount > 0:
        options.add(amount)
    # Keep the entered amount and those nearest it.
    ordered = sorted(options)
    if amount in options:
        at = ordered.index(amount)
        start = max(0, min(at - COMPARE_MAX // 2, len(ordered) - COMPARE_MAX))
        ordered = ordered[start : start + COMPARE_MAX]
    return [format(option.normalize(), "f") for option in ordered[:COMPARE_MAX]]


@bp.post("/customers/<int:customer_id>/quotes/compare")
@requires("policies:create")
def compare(customer_id: int) -> ResponseReturnValue:
    customer_queries.get(customer_id)
    declared = _line(request.form.get("product"))
    field = _compare_field(declared.line)
    if field is None:
        raise NotFound("This product has no options to compare.")
    name = PREFIX + field.name
    entered = request.form.get(name, "")
    options = []
    for value in _options(field, entered):
        form = MultiDict(request.form)
        form[name] = value
        rated, errors = _preview(form)
        current = value == entered.strip() or (not field.choices and _same_amount(value, entered))
        options.append(Option(value, rated, errors, current))
    return render_template(
        "quotes/_compare.html", field=field, options=options, compare_id=COMPARE_ID
    )


def _same_amount(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b.replace(",", "").strip())
    except InvalidOperation:
        return False


@bp.post("/customers/<int:customer_id>/quotes")
@requires("policies:create")
def create(customer_id: int) -> ResponseReturnValue:
    customer_queries.get(customer_id)
    declared = _line(request.form.get("product"))
    try:
        quote = quotes.create_quote(
            customer_id=customer_id,
            line_code=declared.line.code,
            start_date=request.form.get("start_date", ""),
            risk=_risk(request.form),
        )
    except RatingRefused as refused:
        return _form(customer_id, declared, _values(request.form), refused.errors, 422)
    return redirect(url_for("quotes.show", quote_id=quote.id), 303)


def _bind_url(quote_id: int) -> str | None:
    """The policies module's bind form action, once that module is installed."""
    if BIND_ENDPOINT not in current_app.view_functions:
        return None
    try:
        return url_for(BIND_ENDPOINT, quote_id=quote_id)
    except BuildError:
        return None


@bp.get("/quotes/<int:quote_id>")
@requires("policies:read")
def show(quote_id: int) -> ResponseReturnValue:
    quote = quotes.get_quote(quote_id)
    customer = customer_queries.brief(customer_queries.get(quote.customer_id))
    product = product_queries.product(quote.product_id)
    return render_template(
        "quotes/show.html",
        quote=quote,
        customer=customer,
        product=product,
        bind_url=_bind_url(quote.id)
        if quote.status == "open" and has_permission(current_user, "policies:create")
        else None,
    )


def _customer_quote_links(customer_id: int) -> dict[str, Any]:
    """What the customer page shows about quotes: links to quote each product on sale
    and the latest quotes, for callers who may quote and read them."""
    return {
        "products": quotable_products() if has_permission(current_user, "policies:create") else [],
        "quotes": quotes.quotes_of(customer_id, limit=10)
        if has_permission(current_user, "policies:read")
        else [],
    }


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    app.jinja_env.globals["customer_quote_links"] = _customer_quote_links
    app.jinja_env.filters.setdefault("quote_amount", _amount)


def _amount(value: Any) -> str:
    """A Decimal or decimal string with thousands separators and every digit it has:
    14,391.12 for a premium, 0.952380952 for a discount factor in a life trace (a
    step's result is not always money, so it is never rounded here)."""
    try:
        return format(Decimal(str(value)), ",f")
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
