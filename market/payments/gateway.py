"""The payment gateway interface (docs/API.md "Orders"), and the gateways with no outside service.

A gateway is called outside any database transaction (STYLE §8), with an idempotency
key derived from the order (``payment_key``, ``refund_key``, ``return_key``): a request retried after a
timeout or a crash returns the first one's result and never charges or refunds twice.

Three payment methods: ``stripe`` (``market.payments.stripe_gateway``: a PaymentIntent
the buyer confirms; the signed webhook settles the order), ``bank_transfer`` (the
operator records the bank reference) and ``free``. The last two move no money through
the market and are ``OfflineGateway`` values.

Errors: ``PaymentsError`` → ``BadSignature`` (a webhook not signed with our secret:
400) | ``GatewayError`` (the gateway refused or could not be reached; its message is
safe to show).
"""

from dataclasses import dataclass
from typing import Protocol

from market.core.config import Settings


@dataclass(frozen=True)
class PaymentStart:
    """What ``POST /v1/orders`` returns under ``payment`` for a gateway the buyer pays at."""

    provider: str  # "stripe"
    intent_id: str
    client_secret: str


@dataclass(frozen=True)
class PaymentState:
    """A PaymentIntent as re-read from the gateway (never as a webhook claimed it)."""

    intent_id: str
    status: str  # Stripe's: succeeded, requires_payment_method, processing, canceled, ...
    amount: int  # minor units (fen)
    currency: str  # upper-case ISO 4217
    order_id: str | None  # from the metadata the market set
    failure_code: str | None  # last_payment_error.code, e.g. card_declined


@dataclass(frozen=True)
class WebhookEvent:
    """A webhook event whose signature checked out."""

    id: str  # evt_...
    type: str  # payment_intent.succeeded, payment_intent.payment_failed, ...
    intent_id: str | None  # the PaymentIntent, for payment_intent.* events


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    status: str  # Stripe's: succeeded, pending, failed, ...; "owed" for a bank transfer


class PaymentsError(Exception):
    """Base of this package's errors."""


class BadSignature(PaymentsError):
    """A webhook whose ``Stripe-Signature`` is missing, malformed, stale or not ours (400)."""


class GatewayError(PaymentsError):
    """The gateway refused the request or could not be reached.

    ``str(error)`` is safe to show a client; ``code`` is the gateway's error code (e.g.
    ``card_declined``, ``idempotency_error``) and ``http_status`` its HTTP status, when
    it answered at all.
    """

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class PaymentGateway(Protocol):
    """A gateway the buyer pays at (Stripe's, or a test double of it)."""

    provider: str

    async def start(self, order_id: str, amount: int, currency: str, idempotency_key: str) -> PaymentStart:
        """Create the payment for ``amount`` minor units of ``currency``; the same key gives the same payment."""
        ...

    async def fetch(self, intent_id: str) -> PaymentState:
        """Re-read the payment from the gateway."""
        ...

    async def refund(self, intent_id: str, amount: int, idempotency_key: str) -> RefundResult:
        """Give ``amount`` minor units back to the buyer; the same key gives the same refund."""
        ...

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        """Verify and parse a webhook delivery; raises ``BadSignature``."""
        ...

    async def close(self) -> None:
        ...


@dataclass(frozen=True)
class OfflineGateway:
    """A payment method whose money, if any, moves outside the market.

    ``free``: nothing to pay, an order is settled when it is placed (or approved).
    ``bank_transfer``: the buyer pays the exchange's account; the operator records the
    bank reference and amount (``POST /v1/orders/{id}/payment``), which settles the
    order. A refund is owed by the operator, who sends it by bank.
    """

    provider: str
    settles_at_order: bool  # no payment step: settled as soon as no approval is due

    def refund(self, order_id: str, amount: int, idempotency_key: str) -> RefundResult:
        """The refund as the market records it: nothing for ``free``; owed for a bank transfer.

        Deterministic in ``idempotency_key``, like a gateway's: a repeat gives the same result.
        """
        if amount < 0:
            raise ValueError(f"refund amount {amount}, want >= 0")
        if self.settles_at_order:
            return RefundResult(refund_id=f"{self.provider}:{idempotency_key}", status="succeeded")
        return RefundResult(refund_id=f"{self.provider}:{idempotency_key}", status="owed")


FREE = OfflineGateway(provider="free", settles_at_order=True)
BANK_TRANSFER = OfflineGateway(provider="bank_transfer", settles_at_order=False)


def payment_methods(settings: Settings) -> tuple[str, ...]:
    """The payment methods an order may name: Stripe only when its secret key is set."""
    return ("stripe", "bank_transfer", "free") if settings.stripe_secret_key else ("bank_transfer", "free")


def payment_key(order_id: str, attempt: int) -> str:
    """The idempotency key of an order's ``attempt``-th payment (1, 2, ... after each failure)."""
    if attempt < 1:
        raise ValueError(f"attempt {attempt}, want >= 1")
    return f"order:{order_id}:attempt:{attempt}"


def refund_key(order_id: str, dispute_id: str) -> str:
    """The idempotency key of the refund that resolves ``dispute_id`` of ``order_id``."""
    return f"order:{order_id}:refund:{dispute_id}"


def return_key(order_id: str, intent_id: str) -> str:
    """The idempotency key of giving back what ``intent_id`` paid for ``order_id``, when the
    order was not settled with it (ended meanwhile, or paid by another attempt)."""
    return f"order:{order_id}:return:{intent_id}"


__all__ = [
    "BANK_TRANSFER", "FREE", "BadSignature", "GatewayError", "OfflineGateway", "PaymentGateway", "PaymentsError",
    "PaymentStart", "PaymentState", "RefundResult", "WebhookEvent", "payment_key", "payment_methods", "refund_key",
    "return_key",
]
