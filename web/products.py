"""The products screens: the lines the brokerage's plugins offer, enabling and disabling
them, rate table uploads, dated versions, and grace and revival settings.

Managers and admins run the catalogue (`products:*`); uploading a rate table is a
setting (`settings:update`, admins). Rules live in core.products.operations; a form
with bad input comes back with its errors (422) and nothing written.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from core.hookspecs import MenuItem
from core.products import lines, operations, queries
from core.products.rules import FREQUENCIES, Errors, ProductInvalid
from core.security.authz import requires
from web import hosts, menu

bp = Blueprint("products", __name__, url_prefix="/products")


def _index(errors: Errors | None = None, status: int = 200, **values: Any) -> tuple[str, int]:
    declared = lines.declared()
    products = {product.line_code: product for product in queries.products()}
    return (
        render_template(
            "products/index.html",
            declared=sorted(declared.values(), key=lambda d: d.line.name),
            products=products,
            orphans=[p for code, p in products.items() if code not in declared],
            rate_tables=queries.rate_tables(),
            errors=errors or {},
            values=values,
        ),
        status,
    )


@bp.get("")
@requires("products:read")
def index() -> ResponseReturnValue:
    return _index()


@bp.post("/enable")
@requires("products:create")
def enable() -> ResponseReturnValue:
    line_code = request.form.get("line_code", "")
    try:
        product = operations.enable_product(line_code)
    except ProductInvalid as exc:
        return _index(exc.errors, 422)
    flash(f"{product.name} is on sale.", "success")
    return redirect(url_for("products.show", product_id=product.id), 303)


@bp.post("/rate-tables")
@requires("settings:update")
def upload() -> ResponseReturnValue:
    line_code = request.form.get("line_code", "")
    file = request.files.get("file")
    try:
        table = operations.upload_rate_table(
            line_code, (file.filename or "") if file else "", file.read() if file else b""
        )
    except ProductInvalid as exc:
        return _index(exc.errors, 422, line_code=line_code)
    flash(f"Rate table {table.version} loaded. Put it in force with a new version.", "success")
    return redirect(url_for("products.index"), 303)


def _show(product_id: int, errors: Errors | None = None, status: int = 200, **values: Any):
    product = queries.product(product_id)
    declared = lines.get(product.line_code)
    return (
        render_template(
            "products/show.html",
            product=product,
            line=declared.line if declared else None,
            versions=queries.versions(product.id),
            rate_tables=queries.rate_tables(product.line_code),
            frequencies=FREQUENCIES,
            errors=errors or {},
            values=values,
        ),
        status,
    )


@bp.get("/<int:product_id>")
@requires("products:read")
def show(product_id: int) -> ResponseReturnValue:
    return _show(product_id)


@bp.post("/<int:product_id>/disable")
@requires("products:update")
def disable(product_id: int) -> ResponseReturnValue:
    product = operations.disable_product(product_id)
    flash(f"{product.name} is no longer offered for new quotes.", "success")
    return redirect(url_for("products.show", product_id=product.id), 303)


@bp.post("/<int:product_id>/settings")
@requires("products:update")
def settings(product_id: int) -> ResponseReturnValue:
    form = request.form
    try:
        operations.update_product(
            product_id,
            name=form.get("name") or None,
            grace_days={f: form.get(f"grace_{f}", "").strip() for f in FREQUENCIES},
            revival_years=form.get("revival_years", "").strip() or None,
        )
    except ProductInvalid as exc:
        return _show(product_id, exc.errors, 422, **form.to_dict())
    flash("Settings saved.", "success")
    return redirect(url_for("products.show", product_id=product_id), 303)


@bp.post("/<int:product_id>/versions")
@requires("products:update")
def add_version(product_id: int) -> ResponseReturnValue:
    form = request.form
    table = form.get("rate_table_id", "").strip()
    try:
        operations.add_product_version(
            product_id,
            form.get("effective_from", ""),
            int(table) if table.isdigit() else None if not table else -1,
            form.get("notes", ""),
        )
    except ProductInvalid as exc:
        return _show(product_id, exc.errors, 422, **form.to_dict())
    flash("Version added.", "success")
    return redirect(url_for("products.show", product_id=product_id), 303)


def init_app(app: Flask) -> None:
    hosts.tenant_only(app, bp.name)
    app.register_blueprint(bp)
    menu.add_item(app, MenuItem("Products", "products.index", permission="products:read", order=60))
