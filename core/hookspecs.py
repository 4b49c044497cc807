"""Every plugin hook of Power Buyer, one docstring each.

A plugin is a module whose functions, marked with `hookimpl`, are named after the
stubs below; it may implement any subset of them, and any subset of a hook's
arguments. The values hooks exchange are the frozen dataclasses at the top of this
file, so core and plugins share one vocabulary without importing each other.

Every hook is called through `core.plugins`, which calls only the plugins the
current tenant enabled (all loaded plugins when no tenant is in context), each on
its own so that one failing plugin cannot break the call for the others. Hooks
marked `tenant_scoped` act on one tenant's business and refuse to run without a
tenant in context.

`docs/plugins.md` names every hook here; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pluggy

if TYPE_CHECKING:
    from flask import Blueprint, Flask

PROJECT = "powerbuyer"
ENTRY_POINT_GROUP = "powerbuyer.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

TENANT_SCOPED = "powerbuyer_tenant_scoped"

F = TypeVar("F", bound=Callable[..., Any])


def tenant_scoped(spec: F) -> F:
    """Mark a hook that works on one tenant's business (a quote, a payment, a claim)."""
    setattr(spec, TENANT_SCOPED, True)
    return spec


class Refusal(Exception):
    """A plugin's considered "no" to its input: bad risk data, a forged webhook.

    The manager hands it to the caller (the edge turns it into a 422 naming `field`)
    and keeps the plugin enabled. Any other exception counts as the plugin failing.

    Several fields can be refused at once with `errors` (field -> message), so a form
    or a 422 names every bad field in one answer rather than one per attempt.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors: dict[str, str] = dict(errors or {})
        if field is not None and field not in self.errors:
            self.errors[field] = message
        if self.field is None and len(self.errors) == 1:
            self.field = next(iter(self.errors))


# --- Product lines and rating -------------------------------------------------------

RiskFieldType = Literal["text", "integer", "decimal", "money", "date", "boolean", "choice"]
PaymentFrequency = Literal["annual", "half_yearly", "quarterly", "monthly"]


@dataclass(frozen=True)
class RiskField:
    """One input a product line's rating needs, as the quote form asks for it."""

    name: str
    label: str
    type: RiskFieldType
    required: bool = True
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Coverage:
    """A cover a policy of the line can carry, with the limits and deductibles on offer.

    `limit_basis` says what sets the limit when it is not one of `limits` (for example
    the insured declared value, or the sum assured).
    """

    code: str
    label: str
    limit_basis: str = ""
    limits: tuple[Decimal, ...] = ()
    deductibles: tuple[Decimal, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class RateTable:
    """A versioned, effective-dated rating basis, its `data` in the plugin's own shape
    of plain values (dicts, lists, strings, ints, Decimals; never floats).

    A product line's default table has no `effective_from`: it applies until the
    tenant loads its own. `currency` is None when no amount in it is tied to one.
    """

    product_line: str
    version: str
    data: Mapping[str, Any]
    effective_from: date | None = None
    currency: str | None = None


@dataclass(frozen=True)
class LapseRules:
    """Grace days by payment frequency, and whether and how a lapsed policy revives.

    `revival_years` None means a lapsed policy cannot be revived (it is re-quoted).
    """

    grace_days: Mapping[PaymentFrequency, int]
    revival_years: int | None
    revival_requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProductLine:
    """An insurance line a plugin sells: what to ask, what it covers, how it is rated."""

    code: str
    name: str
    risk_fields: tuple[RiskField, ...]
    coverages: tuple[Coverage, ...]
    default_rate_table: RateTable
    lapse: LapseRules


@dataclass(frozen=True)
class RatingStep:
    """One step of a premium calculation, enough to replay the quote to the cent.

    `name` is stable across versions of the tariff (renewals compare steps by name);
    `label` is what a broker reads ("No-claim bonus"); `factor` the rating factor's
    value in words ("35%", "zone A, 1001-1500cc"); `sign` how `result` enters the
    premium: +1 added, -1 subtracted, 0 an intermediate figure (the insured value).
    `inputs` and `result` are plain values (str, int, Decimal, bool), never floats.
    """

    name: str
    inputs: Mapping[str, Any]
    result: Decimal
    rate_table_version: str
    label: str = ""
    factor: str = ""
    sign: int = 0


@dataclass(frozen=True)
class Premium:
    premium: Decimal
    currency: str
    trace: tuple[RatingStep, ...]


# --- Payment gateways --------------------------------------------------------------


@dataclass(frozen=True)
class Gateway:
    """A payment gateway. Empty `currencies`: whatever the merchant account accepts."""

    code: str
    name: str
    currencies: tuple[str, ...] = ()
    refunds: bool = False


@dataclass(frozen=True)
class PaymentRequest:
    """Ask a customer to pay an open item. The gateway must honour `idempotency_key`."""

    reference: str
    amount: Decimal
    currency: str
    description: str
    return_url: str
    idempotency_key: str


@dataclass(frozen=True)
class PaymentSession:
    """Where to send the payer, and the gateway's id for the payment."""

    gateway: str
    external_id: str
    redirect_url: str


@dataclass(frozen=True)
class WebhookEvent:
    """A verified gateway notification. `event_id` lets billing process it once."""

    gateway: str
    event_id: str
    kind: Literal["payment_succeeded", "payment_failed", "refund_succeeded", "other"]
    external_id: str
    amount: Decimal | None = None
    currency: str | None = None


# --- Verification, notification, fraud, documents, screens -------------------------


@dataclass(frozen=True)
class VerificationService:
    code: str
    name: str
    kind: Literal["identity", "credit"]


@dataclass(frozen=True)
class VerificationResult:
    service: str
    outcome: Literal["passed", "failed", "review"]
    reference: str
    score: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NotificationChannel:
    code: str
    name: str
    medium: Literal["email", "sms", "push", "chat"]


@dataclass(frozen=True)
class Message:
    """One message to one recipient. The channel must honour `idempotency_key`."""

    to: str
    subject: str
    body: str
    idempotency_key: str
    # An HTML alternative of `body`, for channels that can carry one (email).
    html: str | None = None


@dataclass(frozen=True)
class Delivery:
    channel: str
    external_id: str
    status: Literal["sent", "queued"]


@dataclass(frozen=True)
class FraudRule:
    """A red flag a tenant can weigh; `default_weight` until the tenant tunes it."""

    code: str
    label: str
    default_weight: int


@dataclass(frozen=True)
class FraudFlag:
    rule: str
    reason: str


@dataclass(frozen=True)
class DocumentStore:
    code: str
    name: str


@dataclass(frozen=True)
class StoredDocument:
    store: str
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class MenuItem:
    """An entry in the staff navigation, shown to users holding `permission`."""

    label: str
    endpoint: str
    section: str = "main"
    permission: str | None = None
    order: int = 100


# --- Hooks: product lines and rating -----------------------------------------------


@hookspec
def powerbuyer_product_lines() -> Sequence[ProductLine]:
    """The product lines this plugin sells: risk fields, coverages with their limits and
    deductibles, the default rate table, and grace and revival rules.

    A declaration only; nothing is rated here. Codes are unique across plugins.
    """


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_compute_premium(
    product_line: str, risk: Mapping[str, Any], rate_table: RateTable, start_date: date
) -> Premium | None:
    """Rate one risk of `product_line` on `rate_table` (the tenant's version in force on
    `start_date`, or the line's default) and return the annual premium, its currency
    and the step-by-step trace that replays it to the cent.

    `risk` holds the values as the caller sent them (JSON: strings, numbers, booleans);
    validate and convert them here. Return None for a product line that is not yours.
    Raise `Refusal(message, errors={field: reason, ...})` naming every bad field (an
    unknown zone, a negative value); it becomes a 422 naming each of them.
    """


@hookspec(firstresult=True)
def powerbuyer_parse_rate_table(
    product_line: str, filename: str, content: bytes
) -> RateTable | None:
    """Read a rate table a tenant uploads for `product_line` (the file's name and bytes:
    JSON, CSV or whatever formats the line documents, an SOA XTbML mortality table for
    instance) and return it checked and normalised, with its `version`.

    The caller sets `effective_from` and stores it; the plugin only reads and checks.
    Return None for a product line that is not yours. Raise `Refusal` naming the bad
    entry (`errors={"own_damage_rate_percent.A[0]": "must be a positive number"}`).
    """


# --- Hooks: payment gateways -------------------------------------------------------


@hookspec
def powerbuyer_payment_gateways() -> Sequence[Gateway]:
    """The payment gateways this plugin provides."""


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_create_payment_request(
    gateway: str, payment: PaymentRequest
) -> PaymentSession | None:
    """Open a payment with `gateway` for `payment` and say where to send the payer.

    Return None when `gateway` is not yours. The same `idempotency_key` must never
    charge twice.
    """


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_parse_webhook(
    gateway: str, headers: Mapping[str, str], body: bytes
) -> WebhookEvent | None:
    """Verify and decode a notification `gateway` posted to us.

    Return None when `gateway` is not yours; raise `Refusal` when the signature or
    payload is not acceptable (a forged or replayed webhook is not a plugin failure).
    """


# --- Hooks: verification services ---------------------------------------------------


@hookspec
def powerbuyer_verification_services() -> Sequence[VerificationService]:
    """The identity and credit verification services this plugin provides."""


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_verify_identity(
    service: str, person: Mapping[str, Any]
) -> VerificationResult | None:
    """Check that `person` (names, date of birth, document numbers) is who they claim
    to be, with identity service `service`. Return None when the service is not yours.
    """


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_check_credit(service: str, person: Mapping[str, Any]) -> VerificationResult | None:
    """Run a credit check on `person` with credit service `service`. Return None when
    the service is not yours.
    """


# --- Hooks: notification channels --------------------------------------------------


@hookspec
def powerbuyer_notification_channels() -> Sequence[NotificationChannel]:
    """The notification channels (email, SMS, push, chat) this plugin provides."""


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_send_message(channel: str, message: Message) -> Delivery | None:
    """Send `message` through `channel`. Return None when the channel is not yours.

    Called from jobs, after the commit that decided to send, so it may be retried;
    the same `idempotency_key` must never deliver twice.
    """


# --- Hooks: fraud rules --------------------------------------------------------------


@hookspec
def powerbuyer_fraud_rules() -> Sequence[FraudRule]:
    """The fraud red-flag rules this plugin adds, with their default weights."""


@hookspec
@tenant_scoped
def powerbuyer_fraud_flags(claim: Mapping[str, Any]) -> Sequence[FraudFlag]:
    """The flags this plugin's rules raise on `claim` (its facts and the policy's and
    customer's history), each naming the rule and why. Return an empty list when none.
    """


# --- Hooks: document storage --------------------------------------------------------


@hookspec
def powerbuyer_document_stores() -> Sequence[DocumentStore]:
    """The document stores (object storage, archives) this plugin provides."""


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_store_document(
    store: str, key: str, content: bytes, content_type: str
) -> StoredDocument | None:
    """Write `content` under `key` in `store`. Keys already carry the tenant; keep them
    as given. Return None when the store is not yours.
    """


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_fetch_document(store: str, key: str) -> bytes | None:
    """The content stored under `key` in `store`. Return None when the store is not
    yours; raise `Refusal` when the key does not exist.
    """


@hookspec(firstresult=True)
@tenant_scoped
def powerbuyer_delete_document(store: str, key: str) -> bool | None:
    """Delete `key` from `store` (a GDPR erasure). True when it existed, False when it
    did not, None when the store is not yours.
    """


# --- Hooks: screens and menu entries ------------------------------------------------


@hookspec
def powerbuyer_blueprints() -> Sequence[Blueprint]:
    """Flask blueprints with this plugin's screens, registered once at start-up.

    Their URLs answer 404 to tenants that have not enabled the plugin.
    """


@hookspec
def powerbuyer_menu_items() -> Sequence[MenuItem]:
    """Entries this plugin adds to the staff navigation, pointing at its endpoints."""


# --- Hooks: job types and start-up ---------------------------------------------------


@hookspec
def powerbuyer_job_types() -> Mapping[str, Callable[..., Any]]:
    """Job types this plugin runs on the RQ workers: name -> `fn(ctx, **payload)`.

    Registered with `core.jobs` at start-up like its own `job_type(name)` functions,
    so they receive ids (never ORM objects) and run in the job's tenant context.
    Prefix names with the plugin's name.
    """


@hookspec
def powerbuyer_startup(app: Flask) -> None:
    """Called once when the application has been created, with every component
    loaded. For set-up that needs the app: config defaults, template filters.
    """
