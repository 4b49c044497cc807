"""Rating: a risk of a product line, on the product version in force, through the
line's plugin, with the trace that replays it to the cent.

`rate` is what a quote, an endorsement and a renewal call; `replay` re-rates a stored
quote (or policy version) on the exact rate table version its trace names, which is
how anyone can check a premium long after the tariff changed; `differences` says what
a replay changed (nothing, when all is well).

Every refusal is a `RatingRefused` naming fields: `product` (unknown, or not enabled
for this tenant), `start_date` (no version in force), `rate_table_version` (a replay
of a table this tenant does not have) and `risk.<field>` for each field the plugin
refused (`risk.zone`), or `risk` for the risk as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any

from core import plugins
from core.hookspecs import Premium, RatingStep, Refusal
from core.hookspecs import RateTable as TableSpec
from core.money import round_cents
from core.products import jsonvalues, lines, queries
from core.products.models import Product, ProductVersion, RateTable
from core.products.rules import RatingRefused, risk_field
from core.tenancy import require_tenant

# Decoded stored tables, by tenant and row: rows are never changed once stored, so a
# decoded copy stays right; the sha256 guards against a row replaced under the id.
_TABLES: dict[tuple[int, int, str], TableSpec] = {}
_TABLES_MAX = 256


@dataclass(frozen=True)
class Rated:
    """A premium and how it was reached. `trace` is JSON-ready (Decimals as strings),
    as quotes store it; `steps` are the plugin's own steps; `risk` is the risk as
    rated and as it is to be stored (blank values dropped, Decimals as strings)."""

    product: Product | queries.Offer
    version: ProductVersion | queries.OfferedVersion
    rate_table: TableSpec
    premium: Decimal
    currency: str
    trace: list[dict[str, Any]]
    steps: tuple[RatingStep, ...]
    risk: dict[str, Any]

    @property
    def rate_table_version(self) -> str:
        return self.rate_table.version


# --- The pieces ---------------------------------------------------------------------


def clean_risk(risk: Any) -> dict[str, Any]:
    """The risk as sent, made storable: blank values (None, "") dropped since a form
    sends every field and the plugins read a blank as "not given"; text trimmed;
    Decimals as strings. The plugin then judges what is left."""
    if not isinstance(risk, Mapping):
        raise RatingRefused({"risk": ["Must be an object of the product's risk fields."]})
    cleaned: dict[str, Any] = {}
    for name, value in risk.items():
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            continue
        cleaned[str(name)] = jsonvalues.plain(value) if not isinstance(value, float) else value
    return cleaned


def _product(line_code: Any, *, enabled: bool) -> tuple[Product, lines.DeclaredLine]:
    if not isinstance(line_code, str) or not line_code:
        raise RatingRefused({"product": ["Name a product line, e.g. motor_private_car."]})
    declared = lines.get(line_code)
    product = queries.by_line(line_code)
    if declared is None or product is None:
        raise RatingRefused({"product": [f"No product {line_code!r} is sold here."]})
    if enabled and not product.is_active:
        raise RatingRefused({"product": [f"{product.name} is not offered for new quotes."]})
    return product, declared


def _version(product: Product, start_date: Any) -> ProductVersion:
    if not isinstance(start_date, date):
        raise RatingRefused({"start_date": ["Must be a date, YYYY-MM-DD."]})
    version = queries.version_in_force(product.id, start_date)
    if version is None:
        first = queries.versions(product.id)
        since = f"; its first version starts on {first[0].effective_from}" if first else ""
        raise RatingRefused(
            {"start_date": [f"No version of {product.name} is in force on {start_date}{since}."]}
        )
    return version


def stored_table(row: RateTable, effective_from: date | None = None) -> TableSpec:
    """A stored rate table as the plugin gave it: exact Decimals and dates again."""
    # The same object for the same table and date, request after request: the plugin
    # may then remember its check of the table (premium_motor does).
    key = (require_tenant().id, row.id, row.sha256, effective_from)
    table = _TABLES.get(key)
    if table is None:
        if len(_TABLES) >= _TABLES_MAX:
            _TABLES.clear()
        table = TableSpec(
            product_line=row.line_code,
            version=row.version,
            data=jsonvalues.decode(row.data),
            effective_from=effective_from,
            currency=row.currency,
        )
        _TABLES[key] = table
    return table


def table_of(
    version: ProductVersion | queries.OfferedVersion, declared: lines.DeclaredLine
) -> TableSpec:
    """The table a product version rates on: its own, or the line's default."""
    if version.rate_table_id is None:
        return declared.line.default_rate_table
    if isinstance(version, ProductVersion):
        assert version.rate_table is not None
        return stored_table(version.rate_table, version.effective_from)
    # An offered version names its table's hash: a table decoded before is found
    # without reading the row (its data is the largest thing a product has).
    key = (require_tenant().id, version.rate_table_id, version.rate_table_sha256)
    table = _TABLES.get((*key, version.effective_from))
    if table is None:
        row = queries.rate_table(version.rate_table_id)
        assert row is not None  # a version's table is never deleted (foreign key)
        table = stored_table(row, version.effective_from)
    return table


def trace_of(steps: Sequence[RatingStep]) -> list[dict[str, Any]]:
    """The plugin's steps as stored and shown: plain JSON, Decimals as strings."""
    return [
        {
            "name": step.name,
            "label": step.label or step.name,
            "factor": step.factor,
            "sign": step.sign,
            "inputs": jsonvalues.plain(step.inputs),
            "result": str(step.result),
            "rate_table_version": step.rate_table_version,
        }
        for step in steps
    ]


def premium_of(
    line_code: str,
    risk: dict[str, Any],
    table: TableSpec,
    start_date: date,
    *,
    product_name: str = "The product",
    compute: Callable[..., Any] | None = None,
) -> Premium:
    """The line's plugin's premium for `risk`. RatingRefused names each field the
    plugin refused, or says the line cannot be rated now: the plugin does not rate it
    (yet), or it failed and was disabled. `compute` is the hook as bulk work prepared
    it once (`plugins.PluginHost.prepared`); by default, an ordinary hook call."""
    if compute is None:
        compute = partial(plugins.call, "powerbuyer_compute_premium")
    try:
        premium = compute(
            product_line=line_code,
            risk=risk,
            rate_table=table,
            start_date=start_date,
        )
    except Refusal as refusal:
        errors = {risk_field(name): [message] for name, message in refusal.errors.items()}
        raise RatingRefused(errors or {"risk": [refusal.message]}) from None
    if not isinstance(premium, Premium):
        raise RatingRefused(
            {"product": [f"{product_name} cannot be rated at the moment; try again later."]}
        )
    return premium


def _compute(
    product: Product | queries.Offer,
    version: ProductVersion | queries.OfferedVersion,
    declared: lines.DeclaredLine,
    table: TableSpec,
    risk: dict[str, Any],
    start_date: date,
) -> Rated:
    premium = premium_of(product.line_code, risk, table, start_date, product_name=product.name)
    return Rated(
        product=product,
        version=version,
        rate_table=table,
        premium=round_cents(premium.premium),
        currency=premium.currency,
        trace=trace_of(premium.trace),
        steps=tuple(premium.trace),
        risk=risk,
    )


# --- Rating and replay ----------------------------------------------------------------


def rate(line_code: str, risk: Mapping[str, Any], start_date: date) -> Rated:
    """Rate `risk` for the tenant's enabled product of `line_code`, on the version in
    force on `start_date`. Raises RatingRefused naming every field it can at once."""
    errors: dict[str, list[str]] = {}
    product: Product | queries.Offer | None = None
    version: ProductVersion | queries.OfferedVersion | None = None
    declared = None
    offer = queries.offer(line_code) if isinstance(line_code, str) else None
    in_force = offer.in_force(start_date) if offer and isinstance(start_date, date) else None
    if in_force is not None and (declared := lines.get(line_code)) is not None:
        product, version = offer, in_force
    else:  # something is missing: find out what, to say so
        try:
            product, declared = _product(line_code, enabled=True)
            version = _version(product, start_date)
        except RatingRefused as refused:
            errors |= refused.errors
    try:
        cleaned = clean_risk(risk)
    except RatingRefused as refused:
        errors |= refused.errors
    if errors:
        raise RatingRefused(errors)
    assert product is not None and declared is not None and version is not None
    table = table_of(version, declared)
    return _compute(product, version, declared, table, cleaned, start_date)


def _field(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def replay(source: Any) -> Rated:
    """Re-rate a stored quote or policy version (or a mapping with `line_code`, `risk`,
    `start_date`, and `rate_table_version` or a `trace` whose steps name it, optionally
    `product_version_id`) on the exact table version it names. A product no longer
    offered still replays."""
    line_code = _field(source, "line_code")
    start_date = _field(source, "start_date")
    if isinstance(start_date, str):
        try:
            start_date = date.fromisoformat(start_date)
        except ValueError:
            raise RatingRefused({"start_date": ["Must be a date, YYYY-MM-DD."]}) from None
    product, declared = _product(line_code, enabled=False)
    version_id = _field(source, "product_version_id")
    version = queries.version(version_id) if isinstance(version_id, int) else None
    if version is None or version.product_id != product.id:
        version = _version(product, start_date)
    wanted = _field(source, "rate_table_version")
    if not wanted:  # a trace names its table on every step
        steps = _field(source, "trace") or ()
        wanted = next((step.get("rate_table_version") for step in steps), None)
    default = declared.line.default_rate_table
    if wanted == default.version:
        table = default
    else:
        row = queries.rate_table_by_version(product.line_code, str(wanted))
        if row is None:
            raise RatingRefused(
                {"rate_table_version": [f"No rate table {wanted!r} of {product.name} is stored."]}
            )
        table = stored_table(
            row, version.effective_from if version.rate_table_id == row.id else None
        )
    risk = clean_risk(_field(source, "risk") or {})
    if not isinstance(start_date, date):
        raise RatingRefused({"start_date": ["Must be a date, YYYY-MM-DD."]})
    return _compute(product, version, declared, table, risk, start_date)


def differences(premium: Decimal, trace: Sequence[Mapping[str, Any]], rated: Rated) -> list[str]:
    """What a replay changed against a stored premium and trace, in words; empty when
    the replay gives the same premium to the cent and the same result at every step."""
    found = []
    if round_cents(Decimal(premium)) != rated.premium:
        found.append(f"premium {premium} -> {rated.premium}")
    before = {step.get("name"): step.get("result") for step in trace}
    after = {step["name"]: step["result"] for step in rated.trace}
    for name in [*before, *(n for n in after if n not in before)]:
        if before.get(name) != after.get(name):
            found.append(f"{name}: {before.get(name)} -> {after.get(name)}")
    return found
