"""Bulk re-rating of a book: what every policy in force of a product would cost at its
next renewal, on the tariff in force then (after a new rate table, say).

An RQ job (`policies.rerate_book`, queue `bulk`) with progress on its job row. The
result is a report, stored as the job's result, not a change to any policy: a
policy's premium for its term is fixed, and a new tariff reaches it at renewal. The
report gives the book's premium now and re-rated, how many policies go up or down
and by how much (bands of the change in percent), the largest changes, and every
refusal (at most REFUSALS_REPORTED listed). Offers already made and still open are
re-rated in place, so what customers are offered follows the new tariff.

Running it again recomputes the same report and leaves offers as they are: it is
idempotent, as jobs must be (at-least-once delivery).

Set-based where the database can do it: one keyset-paged query per chunk reads each
policy with its current version (a LATERAL join), the product version in force on
each renewal date is looked up once per date, and the open offers of a chunk are
read in one query and updated together. Rating itself is the plugin's, one risk at
a time, through the same hook core.products.rating uses.

The per-policy work around the hook call is what bounds the job (a hundred thousand
policies), so it is kept to the rating itself: rows come as plain tuples, a chunk's
risks are decoded from JSON in one go, and the tariff of a renewal date is found once.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Text, cast, func, select, true, update

from core import audit, plugins
from core.db import db
from core.hookspecs import Premium
from core.hookspecs import RateTable as TableSpec
from core.jobs import JobContext, job_type
from core.money import ZERO, round_cents
from core.policies import renewals, terms
from core.policies.models import IN_FORCE, OFFERED, Policy, PolicyVersion, RenewalOffer
from core.products import lines, queries, rating
from core.products.models import Product
from core.products.rules import RatingRefused

RERATE_JOB = "policies.rerate_book"
# Re-rating a book is the catalogue's business: managers and admins.
PERMISSION = "products:update"
CHUNK = 1000
LARGEST = 10
REFUSALS_REPORTED = 100
# The bands of change (in percent of the current premium) the report counts.
BANDS = (
    "below -10%",
    "-10% to -5%",
    "-5% to 0%",
    "unchanged",
    "0% to 5%",
    "5% to 10%",
    "10% and more",
)
# The bands of a change, by the bound (in percent, excluded) each one is below; the
# last one is above them all. Decimals, so no bound is converted per comparison.
_BOUNDS = tuple(Decimal(bound) for bound in (-10, -5, 0, 5, 10))
_BANDS_BY_BOUND = (
    "below -10%",
    "-10% to -5%",
    "-5% to 0%",
    "0% to 5%",
    "5% to 10%",
    "10% and more",
)


@dataclass
class Report:
    line_code: str
    policies: int = 0
    rerated: int = 0
    refused: int = 0
    offers_refreshed: int = 0
    current_total: Decimal = ZERO
    rerated_total: Decimal = ZERO
    bands: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BANDS, 0))
    changes: list[tuple[Decimal, int, Decimal, Decimal]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)

    def count(self, policy_id: int, old: Decimal, new: Decimal) -> None:
        self.rerated += 1
        self.current_total += old
        self.rerated_total += new
        self.bands[band(old, new)] += 1
        self.changes.append((new - old, policy_id, old, new))

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.changes, key=lambda change: (change[0], change[1]))

        def listed(rows: list[tuple[Decimal, int, Decimal, Decimal]]) -> list[dict[str, Any]]:
            return [
                {"policy_id": pid, "premium": str(old), "rerated": str(new), "change": str(diff)}
                for diff, pid, old, new in rows
            ]

        return {
            "line_code": self.line_code,
            "policies": self.policies,
            "rerated": self.rerated,
            "refused": self.refused,
            "offers_refreshed": self.offers_refreshed,
            "current_total": str(self.current_total),
            "rerated_total": str(self.rerated_total),
            "change_total": str(self.rerated_total - self.current_total),
            "bands": self.bands,
            "largest_increases": listed([c for c in reversed(ordered) if c[0] > 0][:LARGEST]),
            "largest_decreases": listed([c for c in ordered if c[0] < 0][:LARGEST]),
            "refusals": self.refusals,
        }


def band(old: Decimal, new: Decimal) -> str:
    """The band (BANDS) of the change from `old` to `new`."""
    if new == old:
        return "unchanged"
    percent = (new - old) * 100 / old if old else Decimal(100)
    # The first band whose bound the change is below (bisect_right: a change of exactly
    # -10% is "-10% to -5%"), else the last.
    return _BANDS_BY_BOUND[bisect.bisect_right(_BOUNDS, percent)]


class Tariffs:
    """The product version (its id and table) in force on each renewal date. The
    product's versions are read once, each version's table decoded once, and each date
    looked up once: a book has a few versions, hundreds of renewal dates and a hundred
    thousand policies, and one table object lets the plugin remember its check of it."""

    def __init__(self, product: Product, declared: lines.DeclaredLine) -> None:
        self.product = product
        # Read once: an ORM attribute costs more than a local, a hundred thousand times.
        self.line_code, self.product_name = product.line_code, product.name
        self.declared = declared
        self._versions = queries.versions(product.id)  # oldest first
        self._starts = [v.effective_from for v in self._versions]
        # Read now: each chunk's commit expires the versions, and an expired one's id
        # is a query.
        self._ids = [v.id for v in self._versions]
        self._tables: dict[int, TableSpec] = {}
        self._days: dict[date, tuple[int, TableSpec] | None] = {}

    def on(self, day: date) -> tuple[int, TableSpec] | None:
        """(id, table) of the version in force on `day`; None before the first."""
        if day not in self._days:
            self._days[day] = self._find(day)
        return self._days[day]

    def _find(self, day: date) -> tuple[int, TableSpec] | None:
        index = bisect.bisect_right(self._starts, day) - 1
        if index < 0:
            return None
        version_id = self._ids[index]
        if version_id not in self._tables:
            self._tables[version_id] = rating.table_of(self._versions[index], self.declared)
        return version_id, self._tables[version_id]


def _rate(
    tariffs: Tariffs, compute: Callable[..., Any], risk: dict[str, Any], start: date
) -> tuple[Premium, int, TableSpec]:
    """The premium of `risk` renewing on `start`, the id of the product version it was
    rated on, and its table."""
    found = tariffs.on(start)
    if found is None:
        raise RatingRefused({"start_date": [f"No version is in force on {start}."]})
    version_id, table = found
    # The risk is as it was stored, which is as rating cleaned it, aged by whole numbers
    # (renewals.next_risk): nothing to clean again.
    premium = rating.premium_of(
        tariffs.line_code,
        risk,
        table,
        start,
        product_name=tariffs.product_name,
        compute=compute,
    )
    return premium, version_id, table


def _current_version() -> Any:
    """A LATERAL subquery: the latest version of the policy in the outer query."""
    return (
        select(PolicyVersion.risk, PolicyVersion.premium, PolicyVersion.trace)
        .where(PolicyVersion.policy_id == Policy.id)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
        .lateral("current")
    )


# A policy in force: (id, end date, its current version's risk and premium).
Current = tuple[int, date, dict[str, Any], Decimal]


def _chunk(product_id: int, after: int) -> list[Current]:
    """Policies in force of the product after id `after`, with their current risk and
    premium (the trace, which is large, only where an offer needs it: `_open_offers`)."""
    current = (
        # The risk as JSON text, decoded below: jsonb would be decoded row by row.
        select(cast(PolicyVersion.risk, Text).label("risk"), PolicyVersion.premium)
        .where(PolicyVersion.policy_id == Policy.id)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
        .lateral("current")
    )
    statement = (
        select(Policy.id, Policy.end_date, current.c.risk, current.c.premium)
        .join(current, true())
        .where(Policy.product_id == product_id, Policy.state == IN_FORCE, Policy.id > after)
        .order_by(Policy.id)
        .limit(CHUNK)
    )
    # Plain rows through the session's connection: no ORM row processing for columns.
    rows = db.session.connection().execute(statement).all()
    if not rows:
        return []
    # The chunk's risks parsed as one JSON array: one call of the parser, not a
    # thousand (the same objects: each risk is one JSON object of the array).
    risks = json.loads(f"[{','.join([row[2] for row in rows])}]")
    return [
        (policy_id, end_date, risk, premium)
        for (policy_id, end_date, _, premium), risk in zip(rows, risks, strict=True)
    ]


class OpenOffer(NamedTuple):
    id: int
    premium: Decimal
    trace: list[dict[str, Any]]
    current_trace: list[dict[str, Any]]


def _open_offers(product_id: int, after: int, last: int) -> dict[int, OpenOffer]:
    """Policy id -> its open offer for the next term, with the current version's trace
    the explanation starts from, for the product's policies with ids after `after` up
    to `last`: a chunk's (`_chunk`), and maybe some it left out, no longer in force,
    which no one looks up. Most policies of a chunk have no open offer, so the (large)
    traces are read only for those that do: two queries at most per chunk."""
    statement = (
        select(RenewalOffer.id, RenewalOffer.policy_id, RenewalOffer.premium, RenewalOffer.trace)
        .join(Policy, Policy.id == RenewalOffer.policy_id)
        .where(
            # The chunk's range of ids, not its thousand ids to send (and dump one by one).
            Policy.product_id == product_id,
            RenewalOffer.policy_id > after,
            RenewalOffer.policy_id <= last,
            RenewalOffer.status == OFFERED,
            RenewalOffer.start_date == Policy.end_date,
        )
    )
    # Plain rows through the session's connection, as `_chunk`.
    offers = db.session.connection().execute(statement).all()
    if not offers:
        return {}
    current = _current_version()
    traces = dict(
        db.session.execute(
            select(Policy.id, current.c.trace)
            .join(current, true())
            .where(Policy.id.in_([offer.policy_id for offer in offers]))
        ).all()
    )
    return {
        offer.policy_id: OpenOffer(offer.id, offer.premium, offer.trace, traces[offer.policy_id])
        for offer in offers
    }


def _update_offers(changed: list[dict[str, Any]]) -> None:
    """ORM bulk UPDATE by primary key: one executemany for a chunk's changed offers."""
    if not changed:
        return
    actor, now = audit.current_actor(), datetime.now(UTC)
    db.session.execute(
        update(RenewalOffer),
        [{**values, "updated_by": actor, "updated_at": now} for values in changed],
    )


def rerate(line_code: str, progress: Callable[[int, int], None] | None = None) -> Report:
    """Re-rate every policy in force of `line_code` for its next renewal (module doc)."""
    report = Report(line_code)
    product = queries.by_line(line_code)
    declared = lines.get(line_code)
    if product is None or declared is None:
        raise RatingRefused({"line_code": [f"No product {line_code!r} is sold here."]})
    tariffs = Tariffs(product, declared)
    # Each chunk's commit expires the product: its id is kept, not reloaded per chunk.
    product_id = product.id
    compute = plugins.manager().prepared("powerbuyer_compute_premium")
    total = db.session.scalar(
        select(func.count())
        .select_from(Policy)
        .where(Policy.product_id == product.id, Policy.state == IN_FORCE)
    )
    after = 0
    while True:
        rows = _chunk(product_id, after)
        if not rows:
            break
        offers = _open_offers(product_id, after, rows[-1][0])
        changed: list[dict[str, Any]] = []
        report.policies += len(rows)
        for policy_id, end_date, current_risk, current_premium in rows:
            risk = renewals.next_risk(current_risk, terms.term_years(current_risk))
            try:
                premium, version_id, table = _rate(tariffs, compute, risk, end_date)
            except RatingRefused as exc:
                report.refused += 1
                if len(report.refusals) < REFUSALS_REPORTED:
                    report.refusals.append({"policy_id": policy_id, "errors": exc.errors})
                continue
            new = round_cents(premium.premium)
            report.count(policy_id, current_premium, new)
            offer = offers.get(policy_id)
            if offer is None:
                continue
            trace = rating.trace_of(premium.trace)
            if offer.premium == new and offer.trace == trace:
                continue
            changed.append(
                {
                    "id": offer.id,
                    "premium": new,
                    "trace": trace,
                    "explanation": renewals.explain(
                        offer.current_trace, trace, current_premium, new
                    ),
                    "risk": rating.clean_risk(risk),
                    "product_version_id": version_id,
                    "rate_table_version": table.version,
                }
            )
        _update_offers(changed)
        report.offers_refreshed += len(changed)
        db.session.commit()
        after = rows[-1][0]
        if progress is not None:
            progress(report.policies, total)
    return report


@job_type(RERATE_JOB, permission=PERMISSION)
def rerate_job(ctx: JobContext, line_code: str) -> dict[str, Any]:
    """Re-rate the book of one product line (module doc); the report is the result."""
    report = rerate(line_code, progress=lambda done, total: ctx.progress(done, total))
    audit.record(
        "policies.rerate_book",
        entity="products",
        entity_id=line_code,
        details={k: v for k, v in report.as_dict().items() if k in SUMMARY},
    )
    return report.as_dict()


SUMMARY = ("policies", "rerated", "refused", "offers_refreshed", "current_total", "rerated_total")
