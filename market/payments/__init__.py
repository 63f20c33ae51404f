"""Payment gateways (DESIGN §4.2, docs/API.md "Orders"): how an order's price is collected
and given back.

- ``gateway``: what the trading services see — the values a gateway returns
  (``PaymentStart``, ``PaymentState``, ``WebhookEvent``, ``RefundResult``), its errors,
  the ``PaymentGateway`` protocol, and the two gateways with no outside service:
  ``free`` and ``bank_transfer`` (the operator records the bank reference).
- ``stripe_gateway``: Stripe PaymentIntents through the official library; the buyer
  confirms with the client secret, the signed ``payment_intent.*`` webhook tells the
  market, which re-reads the PaymentIntent before settling.
- ``models``: the Stripe events already processed, so each is acted on once.

Gateways are called outside any database transaction, with an idempotency key derived
from the order (``payment_key``, ``refund_key``), so a retried request never charges twice.
"""

from market.payments.gateway import (
    BANK_TRANSFER,
    FREE,
    BadSignature,
    GatewayError,
    OfflineGateway,
    PaymentGateway,
    PaymentsError,
    PaymentStart,
    PaymentState,
    RefundResult,
    WebhookEvent,
    payment_key,
    payment_methods,
    refund_key,
    return_key,
)

__all__ = [
    "BANK_TRANSFER", "FREE", "BadSignature", "GatewayError", "OfflineGateway", "PaymentGateway", "PaymentsError",
    "PaymentStart", "PaymentState", "RefundResult", "WebhookEvent", "payment_key", "payment_methods", "refund_key",
    "return_key",
]
