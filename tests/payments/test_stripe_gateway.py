"""The Stripe gateway against localstripe over HTTP, webhooks delivered to a real HTTP
receiver and verified, and the processed-events table on the test database."""

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import stripe
from sqlalchemy import func, select

from market.core import db
from market.payments import BANK_TRANSFER, FREE, BadSignature, GatewayError, WebhookEvent, payment_key, refund_key
from market.payments.gateway import payment_methods
from market.payments.models import StripeEvent, record_event
from market.payments.stripe_gateway import StripeGateway, stripe_gateway
from tests.conftest import FreshDatabase, make_settings
from tests.payments.localstripe_server import (  # noqa: F401 (the fixture, registered by import)
    LOCALSTRIPE_KEY,
    WEBHOOK_SECRET,
    Delivery,
    WebhookReceiver,
    configure_webhook,
    decline,
    localstripe,
    pay,
)

PRICE = 880_000  # ¥8,800.00 in fen


@pytest.fixture(scope="module")
async def gateway(localstripe: str) -> AsyncIterator[StripeGateway]:
    g = StripeGateway(LOCALSTRIPE_KEY, WEBHOOK_SECRET, localstripe)
    yield g
    await g.close()


def order_id() -> str:
    return f"ord_{secrets.token_hex(8)}"


def for_intent(event_type: str, intent_id: str) -> Callable[[Delivery], bool]:
    def match(delivery: Delivery) -> bool:
        event = json.loads(delivery.body)
        return event["type"] == event_type and event["data"]["object"]["id"] == intent_id
    return match


# --- PaymentIntents ----------------------------------------------------------------------


async def test_start_gives_the_buyer_a_client_secret(gateway: StripeGateway) -> None:
    oid = order_id()
    start = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
    assert start.provider == "stripe"
    assert start.intent_id.startswith("pi_")
    assert start.client_secret.startswith(f"{start.intent_id}_secret_")
    state = await gateway.fetch(start.intent_id)
    assert (state.intent_id, state.status, state.amount, state.currency, state.order_id, state.failure_code) == (
        start.intent_id, "requires_payment_method", PRICE, "CNY", oid, None)


async def test_the_same_idempotency_key_gives_the_same_intent(gateway: StripeGateway) -> None:
    oid = order_id()
    first = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
    again = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
    assert again == first
    other = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 2))
    assert other.intent_id != first.intent_id
    # The key is bound to its parameters: reusing it for another amount is refused.
    with pytest.raises(GatewayError) as refused:
        await gateway.start(oid, PRICE + 1, "CNY", payment_key(oid, 1))
    assert refused.value.code == "idempotency_error"
    assert refused.value.http_status == 400


async def test_a_paid_intent_is_read_back_as_succeeded(gateway: StripeGateway, localstripe: str) -> None:
    oid = order_id()
    start = await gateway.start(oid, PRICE, "cny", payment_key(oid, 1))
    assert (await pay(localstripe, start.intent_id))["status"] == "succeeded"
    state = await gateway.fetch(start.intent_id)
    assert (state.status, state.amount, state.currency, state.order_id, state.failure_code) == (
        "succeeded", PRICE, "CNY", oid, None)


async def test_a_declined_card_then_a_new_attempt_with_a_good_one(gateway: StripeGateway, localstripe: str) -> None:
    oid = order_id()
    first = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
    await decline(localstripe, first.intent_id)
    failed = await gateway.fetch(first.intent_id)
    assert (failed.status, failed.failure_code, failed.order_id) == ("requires_payment_method", "card_declined", oid)

    retry = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 2))
    assert retry.intent_id != first.intent_id
    assert (await pay(localstripe, retry.intent_id))["status"] == "succeeded"
    paid = await gateway.fetch(retry.intent_id)
    assert (paid.status, paid.failure_code, paid.order_id) == ("succeeded", None, oid)
    assert (await gateway.fetch(first.intent_id)).status == "requires_payment_method"


async def test_refund_gives_a_refund_id_once_per_key(gateway: StripeGateway, localstripe: str) -> None:
    oid = order_id()
    start = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
    await pay(localstripe, start.intent_id)
    refund = await gateway.refund(start.intent_id, PRICE, refund_key(oid, "dsp_1"))
    assert refund.refund_id.startswith("re_")
    assert refund.status == "succeeded"
    assert await gateway.refund(start.intent_id, PRICE, refund_key(oid, "dsp_1")) == refund


async def test_refunding_an_unpaid_intent_is_a_gateway_error(gateway: StripeGateway) -> None:
    oid = order_id()
    start = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(start.intent_id, PRICE, refund_key(oid, "dsp_1"))
    assert refused.value.http_status == 400
    assert "Cannot refund" not in str(refused.value)  # the gateway's own words stay out of the message


async def test_an_unknown_intent_is_a_gateway_error(gateway: StripeGateway) -> None:
    with pytest.raises(GatewayError) as missing:
        await gateway.fetch("pi_doesnotexist")
    assert missing.value.http_status == 404


async def test_an_unreachable_gateway_is_a_gateway_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = StripeGateway(LOCALSTRIPE_KEY, WEBHOOK_SECRET, f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(GatewayError, match="could not be reached"):
            await g.start("ord_x", PRICE, "CNY", payment_key("ord_x", 1))
    finally:
        await g.close()


async def test_bad_arguments_are_refused_before_any_request(gateway: StripeGateway) -> None:
    for amount in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            await gateway.start("ord_x", amount, "CNY", "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await gateway.start("ord_x", PRICE, "RMB¥", "k")
    with pytest.raises(ValueError):
        await gateway.start("ord_x", PRICE, "CNY", "")
    with pytest.raises(ValueError):
        await gateway.refund("pi_x", 0, "k")


# --- webhooks ----------------------------------------------------------------------------


async def test_webhooks_are_delivered_over_http_and_verified(gateway: StripeGateway, localstripe: str) -> None:
    with WebhookReceiver() as receiver:
        await configure_webhook(localstripe, receiver.url, WEBHOOK_SECRET)
        oid = order_id()
        first = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
        await decline(localstripe, first.intent_id)
        retry = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 2))
        await pay(localstripe, retry.intent_id)

        failed = await receiver.wait_for(for_intent("payment_intent.payment_failed", first.intent_id))
        succeeded = await receiver.wait_for(for_intent("payment_intent.succeeded", retry.intent_id))

    assert failed.signature and failed.signature.startswith("t=")
    event = gateway.parse_webhook(failed.body, failed.signature)
    assert event.id.startswith("evt_")
    assert (event.type, event.intent_id) == ("payment_intent.payment_failed", first.intent_id)
    event = gateway.parse_webhook(succeeded.body, succeeded.signature)
    assert (event.type, event.intent_id) == ("payment_intent.succeeded", retry.intent_id)
    assert event.id == json.loads(succeeded.body)["id"]


async def test_a_bad_signature_is_refused(gateway: StripeGateway, localstripe: str) -> None:
    with WebhookReceiver() as receiver:
        await configure_webhook(localstripe, receiver.url, WEBHOOK_SECRET)
        oid = order_id()
        start = await gateway.start(oid, PRICE, "CNY", payment_key(oid, 1))
        await pay(localstripe, start.intent_id)
        delivery = await receiver.wait_for(for_intent("payment_intent.succeeded", start.intent_id))
    body, signature = delivery.body, delivery.signature
    assert gateway.parse_webhook(body, signature).intent_id == start.intent_id

    tampered = body.replace(b'"succeeded"', b'"canceled"', 1)
    assert tampered != body
    bad_inputs: list[tuple[bytes, str | None]] = [
        (tampered, signature),
        (body + b" ", signature),
        (body, None),
        (body, ""),
        (body, "garbage"),
        (body, signature.replace("v1=", "v0=")),  # type: ignore[union-attr]
        (body, stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_someone_else")),
        (b"\xff\xfe not utf-8", signature),
    ]
    for payload, header in bad_inputs:
        with pytest.raises(BadSignature):
            gateway.parse_webhook(payload, header)

    wrong_secret = StripeGateway(LOCALSTRIPE_KEY, "whsec_someone_else", localstripe)
    no_secret = StripeGateway(LOCALSTRIPE_KEY, "", localstripe)
    try:
        with pytest.raises(BadSignature):
            wrong_secret.parse_webhook(body, signature)
        # An empty secret would make anyone's HMAC valid: refuse everything.
        forged = stripe.WebhookSignature.generate_signature_header(body.decode(), "")
        with pytest.raises(BadSignature):
            no_secret.parse_webhook(body, forged)
    finally:
        await wrong_secret.close()
        await no_secret.close()


async def test_a_signed_body_that_is_not_an_event_is_refused(gateway: StripeGateway) -> None:
    for body in (b"not json", b"[]", b'{"object": "event"}'):
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
        with pytest.raises(BadSignature):
            gateway.parse_webhook(body, header)


async def test_events_of_other_objects_name_no_intent(gateway: StripeGateway) -> None:
    body = json.dumps({"id": "evt_1", "object": "event", "type": "charge.refunded",
                       "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"}}})
    header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    assert gateway.parse_webhook(body.encode(), header) == WebhookEvent("evt_1", "charge.refunded", None)


# --- settings and the offline gateways ----------------------------------------------------


async def test_stripe_is_off_without_a_secret_key(tmp_path: Path, localstripe: str) -> None:
    off = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db")
    assert stripe_gateway(off) is None
    assert payment_methods(off) == ("bank_transfer", "free")

    on = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db", stripe_secret_key=LOCALSTRIPE_KEY,
                       stripe_webhook_secret=WEBHOOK_SECRET, stripe_api_base=localstripe)
    assert payment_methods(on) == ("stripe", "bank_transfer", "free")
    g = stripe_gateway(on)
    assert isinstance(g, StripeGateway)
    try:
        oid = order_id()
        assert (await g.start(oid, 100, "CNY", payment_key(oid, 1))).intent_id.startswith("pi_")
    finally:
        await g.close()


def test_offline_gateways() -> None:
    assert (FREE.provider, FREE.settles_at_order) == ("free", True)
    assert (BANK_TRANSFER.provider, BANK_TRANSFER.settles_at_order) == ("bank_transfer", False)
    key = refund_key("ord_1", "dsp_1")
    assert FREE.refund("ord_1", 0, key).status == "succeeded"
    owed = BANK_TRANSFER.refund("ord_1", PRICE, key)
    assert owed.status == "owed"
    assert BANK_TRANSFER.refund("ord_1", PRICE, key) == owed
    assert payment_key("ord_1", 2) == "order:ord_1:attempt:2"
    with pytest.raises(ValueError):
        payment_key("ord_1", 0)


# --- events processed once -----------------------------------------------------------------


@pytest.fixture(scope="module")
async def sessions(databases: FreshDatabase) -> AsyncIterator[db.SessionMaker]:
    engine = db.make_engine(await databases.new())
    yield db.make_sessionmaker(engine)
    await engine.dispose()


def an_event(type_: str = "payment_intent.succeeded") -> WebhookEvent:
    return WebhookEvent(id=f"evt_{secrets.token_hex(8)}", type=type_, intent_id=f"pi_{secrets.token_hex(7)}")


async def rows(sessions: db.SessionMaker, event_id: str) -> list[StripeEvent]:
    async with sessions() as session:
        return list((await session.exec(select(StripeEvent).where(StripeEvent.id == event_id))).scalars())


async def test_an_event_is_recorded_once(sessions: db.SessionMaker) -> None:
    event, other = an_event(), an_event("payment_intent.payment_failed")
    async with sessions() as session, session.begin():
        assert await record_event(session, event, "settled") is True
        assert await record_event(session, event, "ignored") is False
        # The duplicate rolled back only its savepoint: the transaction goes on.
        assert await record_event(session, other, "failed") is True
    async with sessions() as session, session.begin():
        assert await record_event(session, event, "settled") is False

    [row] = await rows(sessions, event.id)
    assert (row.type, row.intent_id, row.outcome) == (event.type, event.intent_id, "settled")
    assert row.received_at.tzinfo is not None
    assert [r.outcome for r in await rows(sessions, other.id)] == ["failed"]


async def test_an_event_recorded_in_a_rolled_back_transaction_is_not_kept(sessions: db.SessionMaker) -> None:
    event = an_event()
    async with sessions() as session:
        await session.begin()
        assert await record_event(session, event, "settled")
        await session.rollback()
    async with sessions() as session, session.begin():
        assert await record_event(session, event, "settled") is True


async def test_concurrent_deliveries_of_one_event_record_it_once(sessions: db.SessionMaker) -> None:
    event = an_event()

    async def deliver(outcome: str) -> bool:
        async with sessions() as session, session.begin():
            recorded = await record_event(session, event, outcome)
            await asyncio.sleep(0.2)  # hold the transaction open while the other races
            return recorded

    results = await asyncio.gather(*(deliver(f"try{i}") for i in range(4)))
    assert sorted(results) == [False, False, False, True]
    async with sessions() as session:
        count = (await session.exec(select(func.count()).select_from(StripeEvent)
                                    .where(StripeEvent.id == event.id))).scalar_one()
    assert count == 1
