"""Stripe as a payment gateway.

Declares the gateway only: payment requests and webhook parsing come with the billing
work, so `powerbuyer_create_payment_request` and `powerbuyer_parse_webhook` are not
implemented yet, and refunds are not claimed.
"""

from __future__ import annotations

from core.hookspecs import Gateway, hookimpl

STRIPE = Gateway(code="stripe", name="Stripe")


@hookimpl
def powerbuyer_payment_gateways() -> list[Gateway]:
    return [STRIPE]
