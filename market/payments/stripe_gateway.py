"""Stripe PaymentIntents through the official library (stripe-python's ``StripeClient``).

The flow (https://docs.stripe.com/payments/payment-intents): the market creates a
PaymentIntent for the order's price, with the order id in its metadata and an
idempotency key derived from the order; the buyer confirms it with the client secret;
Stripe sends a signed ``payment_intent.succeeded`` (or ``.payment_failed``) event; the
market verifies the signature (``parse_webhook``) and re-reads the PaymentIntent
(``fetch``) before it settles, so it acts on Stripe's state, never on the event's copy.
Refunds go back through the refund API with their own idempotency key.

Each gateway has its own ``StripeClient`` (no global ``stripe.api_key``), pointed at
``MARKET_STRIPE_API_BASE`` (tests use localstripe), and talks through the library's
httpx client with the ``*_async`` methods, so no call blocks the event loop.
"""

import json
import re
from typing import Any

import stripe

from market.core.config import Settings
from market.payments.gateway import (
    BadSignature,
    GatewayError,
    PaymentStart,
    PaymentState,
    RefundResult,
    WebhookEvent,
)

PROVIDER = "stripe"
TIMEOUT_SECONDS = 30.0
# The library retries connection failures and 409/429/5xx answers with backoff,
# resending the same idempotency key, so a retry never creates a second object.
NETWORK_RETRIES = 2
MAX_IDEMPOTENCY_KEY = 255  # Stripe's limit
_CURRENCY = re.compile(r"[A-Za-z]{3}")


class _HTTPXClient(stripe.HTTPXClient):
    """stripe-python's httpx client, sending the form-encoded body as ``content=``:
    httpx deprecates raw text in ``data=``, which the library passes."""

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return args, kwargs


class StripeGateway:
    """``PaymentGateway`` for Stripe. Call ``close()`` when done (the app's shutdown)."""

    provider = PROVIDER

    def __init__(self, secret_key: str, webhook_secret: str, api_base: str) -> None:
        if not secret_key:
            raise ValueError("a Stripe secret key is required (MARKET_STRIPE_SECRET_KEY)")
        self._webhook_secret = webhook_secret
        self._http = _HTTPXClient(timeout=TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=NETWORK_RETRIES,
        )

    async def start(self, order_id: str, amount: int, currency: str, idempotency_key: str) -> PaymentStart:
        """Create the PaymentIntent of an order's payment attempt.

        Requires ``amount > 0`` in minor units and an ISO 4217 ``currency``. The same
        ``idempotency_key`` gives the same PaymentIntent (Stripe keeps keys for 24 h);
        reusing a key with other parameters is a ``GatewayError`` (``idempotency_error``).
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount {amount!r}, want a positive number of minor units")
        if not _CURRENCY.fullmatch(currency):
            raise ValueError(f"currency {currency!r}, want an ISO 4217 code")
        _check_key(idempotency_key)
        try:
            intent = await self._client.v1.payment_intents.create_async(
                {  # type: ignore[typeddict-unknown-key]  # payment_method_types: in the API, not in the typed params
                    "amount": amount,
                    "currency": currency.lower(),
                    "metadata": {"order_id": order_id},
                    "payment_method_types": ["card"],
                },
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        if not intent.client_secret:
            raise GatewayError("the payment gateway returned a payment without a client secret")
        return PaymentStart(provider=PROVIDER, intent_id=intent.id, client_secret=intent.client_secret)

    async def fetch(self, intent_id: str) -> PaymentState:
        """Re-read a PaymentIntent from Stripe (what settlement trusts)."""
        if not intent_id:
            raise ValueError("intent_id is empty")
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        metadata = intent.metadata.to_dict() if intent.metadata else {}
        error = getattr(intent, "last_payment_error", None)
        order_id = metadata.get("order_id")
        return PaymentState(
            intent_id=intent.id,
            status=intent.status,
            amount=intent.amount,
            currency=intent.currency.upper(),
            order_id=order_id if isinstance(order_id, str) else None,
            failure_code=getattr(error, "code", None) if error else None,
        )

    async def cancel(self, intent_id: str) -> PaymentState:
        """Cancel a PaymentIntent so that it can no longer be paid. A PaymentIntent that
        succeeded meanwhile cannot be cancelled: its state is returned, not an error."""
        if not intent_id:
            raise ValueError("intent_id is empty")
        try:
            await self._client.v1.payment_intents.cancel_async(intent_id)
        except stripe.StripeError as exc:
            state = await self.fetch(intent_id)
            if state.status in ("succeeded", "canceled", "processing"):
                return state
            raise _gateway_error(exc) from exc
        return await self.fetch(intent_id)

    async def refund(self, intent_id: str, amount: int, idempotency_key: str) -> RefundResult:
        """Refund ``amount`` minor units of a succeeded PaymentIntent (``0 < amount <=`` what is left)."""
        if not intent_id:
            raise ValueError("intent_id is empty")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount {amount!r}, want a positive number of minor units")
        _check_key(idempotency_key)
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": intent_id, "amount": amount},
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return RefundResult(refund_id=refund.id, status=refund.status or "pending")

    def parse_webhook(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        """Verify ``Stripe-Signature`` over the raw body and its timestamp (within the
        library's 5-minute tolerance) with stripe-python's ``WebhookSignature``, as its
        ``construct_event`` does, then read the event's id, type and PaymentIntent from
        the JSON; raises ``BadSignature``.

        With no webhook secret configured every delivery is refused: an empty HMAC key
        would let anyone sign.
        """
        if not self._webhook_secret:
            raise BadSignature("no webhook secret is configured (MARKET_STRIPE_WEBHOOK_SECRET)")
        if not signature_header:
            raise BadSignature("no Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(payload, signature_header, self._webhook_secret,
                                                  stripe.Webhook.DEFAULT_TOLERANCE)
            event = json.loads(payload)
        except stripe.SignatureVerificationError as exc:
            raise BadSignature("the Stripe-Signature does not match the body") from exc
        except ValueError as exc:  # not UTF-8, not JSON
            raise BadSignature("the webhook body is not a JSON event") from exc
        # Signed by Stripe, so well-formed in practice; checked all the same.
        event_id, event_type = _field(event, "id"), _field(event, "type")
        if event_id is None or event_type is None:
            raise BadSignature("the webhook body is not a Stripe event")
        intent_id = None
        if event_type.startswith("payment_intent."):
            data = event.get("data")
            intent_id = _field(data.get("object") if isinstance(data, dict) else None, "id")
        return WebhookEvent(id=event_id, type=event_type, intent_id=intent_id)

    async def close(self) -> None:
        await self._http.close_async()


def stripe_gateway(settings: Settings) -> StripeGateway | None:
    """The Stripe gateway of these settings, or ``None`` when Stripe is off (no secret key)."""
    if not settings.stripe_secret_key:
        return None
    return StripeGateway(settings.stripe_secret_key, settings.stripe_webhook_secret, settings.stripe_api_base)


def _field(obj: object, name: str) -> str | None:
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _check_key(idempotency_key: str) -> None:
    if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency key of {len(idempotency_key)} characters, want 1..{MAX_IDEMPOTENCY_KEY}")


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    """A message safe for a client: what kind of failure and Stripe's code, never its raw text."""
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayError("the payment gateway could not be reached")
    code = exc.code
    if isinstance(exc, stripe.CardError):
        message = "the card was declined"
    elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        message = "the market's payment gateway credentials were refused"
    elif isinstance(exc, stripe.RateLimitError):
        message = "the payment gateway is busy; try again"
    elif isinstance(exc, stripe.IdempotencyError):
        message = "the payment gateway saw this request before with other parameters"
        code = code or "idempotency_error"
    elif exc.http_status is not None and exc.http_status >= 500:
        message = "the payment gateway failed"
    else:
        message = "the payment gateway refused the request"
    return GatewayError(f"{message} ({code})" if code else message, code=code, http_status=exc.http_status)


__all__ = ["PROVIDER", "StripeGateway", "stripe_gateway"]
