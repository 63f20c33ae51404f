"""Card payments end to end: a real ``market serve`` process, localstripe as Stripe, and
localstripe's webhooks delivered to the market over real HTTP. A payment settles the
order; a failed one is recorded and may be tried again; a duplicate or forged webhook
changes nothing; a cancellation and a payment cannot both win."""

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Parties, Party, assert_problem, make_settings
from tests.payments.localstripe_server import LOCALSTRIPE_KEY, WEBHOOK_SECRET, configure_webhook, decline, pay
from tests.registry_support import propose, provider
from tests.regulator_acts import act as regulator_act
from tests.serving import serving
from tests.trading.support import buyer, offer, order_body

pytestmark = pytest.mark.slow


class Market:
    def __init__(self, client: httpx.AsyncClient, parties: Parties, operator: Party, stripe: str) -> None:
        self.client, self.parties, self.operator, self.stripe = client, parties, operator, stripe


@pytest.fixture(scope="module")
async def market(databases, tmp_path_factory, localstripe: str) -> Any:
    settings = make_settings(tmp_path_factory.mktemp("card"), await databases.new(),
                             stripe_secret_key=LOCALSTRIPE_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                             stripe_api_base=localstripe)
    async with serving(settings, MARKET_STRIPE_SECRET_KEY=LOCALSTRIPE_KEY, MARKET_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                       MARKET_STRIPE_API_BASE=localstripe, MARKET_CLOCK_INTERVAL="1") as served:
        await configure_webhook(localstripe, f"{served.base}/v1/payments/stripe/webhook", WEBHOOK_SECRET)
        async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
            token = served.operator_token
            r = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
            operator = Party(r.json()["id"], token, r.json())
            yield Market(client, Parties(client, settings, operator), operator, localstripe)  # type: ignore[arg-type]


async def wait_for(client: httpx.AsyncClient, order_id: str, who: Any, status: str, seconds: float = 15) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        order = (await client.get(f"/v1/orders/{order_id}", headers=who.auth)).json()
        if order["status"] == status:
            return order
        assert time.monotonic() < deadline, f"order {order_id} is {order['status']}, not {status}"
        await asyncio.sleep(0.1)


async def told_of(client: httpx.AsyncClient, who: Any, event: str, subject: str, seconds: float = 15) -> dict:
    """The notification of ``event`` about ``subject`` in ``who``'s inbox, once it is there."""
    deadline = time.monotonic() + seconds
    while True:
        for item in (await client.get("/v1/notifications", headers=who.auth)).json()["items"]:
            if item["event"] == event and item["subject"] == subject:
                return item
        assert time.monotonic() < deadline, f"{event} about {subject} did not reach {who.id}'s inbox"
        await asyncio.sleep(0.1)


async def card_order(m: Market) -> tuple[Any, Any, dict[str, Any]]:
    holder, listing = await offer(m.client, m.parties, m.operator)
    b = await buyer(m.client, m.parties)
    r = await m.client.post("/v1/orders", json=order_body(listing, "one_time", payment_method="stripe"),
                            headers=b.auth)
    assert r.status_code == 201, r.text
    return holder, b, r.json()


def signed(payload: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


async def test_a_card_payment_settles_the_order(market: Market) -> None:
    holder, b, order = await card_order(market)
    assert order["status"] == "awaiting_payment"
    payment = order["payment"]
    assert payment["provider"] == "stripe" and payment["intent_id"].startswith("pi_") and payment["client_secret"]
    seen_by_holder = (await market.client.get(f"/v1/orders/{order['id']}", headers=holder.auth)).json()
    assert seen_by_holder["payment"]["client_secret"] is None
    await pay(market.stripe, payment["intent_id"])
    active = await wait_for(market.client, order["id"], b, "active")
    assert active["payment"]["reference"] == f"stripe:{payment['intent_id']}"
    r = await market.client.get(f"/v1/orders/{order['id']}/contract", headers=b.auth)
    assert r.json()["document"]["payment"] == {"method": "stripe", "reference": f"stripe:{payment['intent_id']}"}


async def test_a_failed_payment_is_recorded_and_tried_again(market: Market) -> None:
    holder, b, order = await card_order(market)
    first = order["payment"]["intent_id"]
    await decline(market.stripe, first)
    failed = await wait_for(market.client, order["id"], b, "payment_failed")
    assert failed["payment"]["failure_code"] == "card_declined"
    # The buyer is told (with the card's failure code); the holder is not.
    told = await told_of(market.client, b, "order.payment_failed", order["id"])
    assert told["data"]["failure_code"] == "card_declined" and told["data"]["order"] == order["id"]
    holder_events = [n["event"] for n in (await market.client.get("/v1/notifications",
                                                                  headers=holder.auth)).json()["items"]]
    assert "order.payment_failed" not in holder_events
    r = await market.client.post(f"/v1/orders/{order['id']}/payment-attempts", headers=b.auth)
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["status"] == "awaiting_payment" and again["payment"]["attempt"] == 2
    assert again["payment"]["intent_id"] != first
    await pay(market.stripe, again["payment"]["intent_id"])
    await wait_for(market.client, order["id"], b, "active")
    assert_problem(await market.client.post(f"/v1/orders/{order['id']}/payment-attempts", headers=b.auth), 409)


async def test_webhooks_count_once_and_must_be_signed(market: Market) -> None:
    _, b, order = await card_order(market)
    intent = order["payment"]["intent_id"]
    event = {"id": f"evt_test_{order['id']}", "object": "event", "type": "payment_intent.succeeded",
             "data": {"object": {"id": intent, "object": "payment_intent"}}}
    payload = json.dumps(event).encode()
    # Forged: bad signature, or none at all. Nothing happens.
    r = await market.client.post("/v1/payments/stripe/webhook", content=payload, headers=signed(payload, "whsec_x"))
    assert_problem(r, 400, "bad-signature")
    r = await market.client.post("/v1/payments/stripe/webhook", content=payload,
                                 headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "bad-signature")
    # A claim of success is checked against Stripe: unpaid, it settles nothing.
    r = await market.client.post("/v1/payments/stripe/webhook", content=payload, headers=signed(payload))
    assert r.status_code == 200 and r.json()["outcome"] == "ignored", r.text
    assert (await market.client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()["status"] == \
        "awaiting_payment"
    # Paid: the real event settles it; the same event again is a duplicate.
    await pay(market.stripe, intent)
    await wait_for(market.client, order["id"], b, "active")
    event2 = {**event, "id": f"evt_again_{order['id']}"}
    payload2 = json.dumps(event2).encode()
    outcomes = []
    for _ in range(2):
        r = await market.client.post("/v1/payments/stripe/webhook", content=payload2, headers=signed(payload2))
        outcomes.append(r.json()["outcome"])
    assert outcomes == ["ignored", "duplicate"]
    entries = (await market.client.get("/v1/ledger/entries", params={"subject": f"order:{order['id']}"})).json()
    types = [i["entry"]["type"] for i in entries["items"]]
    assert types.count("trade.settled") == 1


async def test_cancel_versus_pay(market: Market) -> None:
    # Cancelled first: the PaymentIntent is cancelled at Stripe, so it can no longer be paid.
    _, b, order = await card_order(market)
    r = await market.client.post(f"/v1/orders/{order['id']}/cancellation", headers=b.auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    async with httpx.AsyncClient(base_url=market.stripe) as stripe:
        pi = (await stripe.get(f"/v1/payment_intents/{order['payment']['intent_id']}",
                               auth=(LOCALSTRIPE_KEY, ""))).json()
    assert pi["status"] == "canceled"
    # Paid first: the cancellation is refused and the order settles.
    _, b, order = await card_order(market)
    await pay(market.stripe, order["payment"]["intent_id"])
    r = await market.client.post(f"/v1/orders/{order['id']}/cancellation", headers=b.auth)
    # Refused either way: the payment was made (or the webhook settled the order already).
    assert r.status_code == 409, r.text
    assert r.json()["type"].rsplit("/", 1)[1] in ("payment-received", "invalid-transition")
    await wait_for(market.client, order["id"], b, "active")


# -- what may not be paid, and payments that go back -----------------------------------------


async def stripe_get(m: Market, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=m.stripe, auth=(LOCALSTRIPE_KEY, "")) as stripe:
        r = await stripe.get(path)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def wait_returned(m: Market, order_id: str, who: Any, seconds: float = 15) -> dict[str, Any]:
    """The order once its one payment return was refunded at the gateway."""
    deadline = time.monotonic() + seconds
    while True:
        order = (await m.client.get(f"/v1/orders/{order_id}", headers=who.auth)).json()
        if [r["status"] for r in order["payment"]["returns"]] == ["refunded"]:
            return order
        assert time.monotonic() < deadline, f"order {order_id}: no refunded return in {order['payment']}"
        await asyncio.sleep(0.1)


async def assert_refunded_at_stripe(m: Market, returned: dict[str, Any], intent_id: str, amount: int) -> None:
    assert returned["reference"] == f"stripe:{intent_id}" and returned["amount"]["amount"] == amount
    refund = await stripe_get(m, f"/v1/refunds/{returned['refund_reference'].removeprefix('stripe:')}")
    assert refund["payment_intent"] == intent_id and refund["amount"] == amount


async def trade_types(m: Market, order_id: str) -> list[str]:
    entries = (await m.client.get("/v1/ledger/entries", params={"subject": f"order:{order_id}"})).json()
    return [i["entry"]["type"] for i in entries["items"]]


async def test_a_card_payment_after_a_freeze_is_given_back(market: Market) -> None:
    """The buyer pays after the regulator froze the asset: the webhook does not settle;
    the order ends with the reason and the payment is refunded through the gateway."""
    holder, b, order = await card_order(market)
    regulator = await market.parties.staff("regulator")
    r = await regulator_act(market.client, regulator, "action", None, {
        "action": "freeze_asset", "target": order["asset_id"], "reason": "under investigation"})
    assert r.status_code == 201, r.text
    intent = order["payment"]["intent_id"]
    await pay(market.stripe, intent)
    ended = await wait_for(market.client, order["id"], b, "cancelled")
    assert "frozen" in ended["status_reason"] and ended["settled_at"] is None
    seen_by_holder = (await market.client.get(f"/v1/orders/{order['id']}", headers=holder.auth)).json()
    assert "frozen" in seen_by_holder["status_reason"] and seen_by_holder["payment"]["returns"] == []
    [returned] = (await wait_returned(market, order["id"], b))["payment"]["returns"]
    assert returned["cause"] == "not-settleable"
    await assert_refunded_at_stripe(market, returned, intent, order["price"]["amount"])
    types = await trade_types(market, order["id"])
    assert "trade.settled" not in types and "trade.payment_refunded" in types
    r = await market.client.get(f"/v1/orders/{order['id']}/contract", headers=b.auth)
    assert_problem(r, 409)


async def test_a_transfer_ends_a_card_order_and_cancels_its_intent(market: Market) -> None:
    holder, b, order = await card_order(market)
    receiver = await provider(market.client, market.parties)
    transfer, signing_bytes = await propose(market.client, holder, order["asset_id"], receiver.id)
    r = await market.client.post(f"/v1/transfers/{transfer['id']}/acceptance", headers=receiver.auth,
                                 json={"key_id": receiver.key_id, "signature": receiver.sign(signing_bytes)})
    assert r.status_code == 200, r.text
    ended = (await market.client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()
    assert ended["status"] == "cancelled" and "changed hands" in ended["status_reason"]
    deadline = time.monotonic() + 15
    while (await stripe_get(market, f"/v1/payment_intents/{order['payment']['intent_id']}"))["status"] != "canceled":
        assert time.monotonic() < deadline, "the ended order's PaymentIntent was not cancelled at the gateway"
        await asyncio.sleep(0.2)


async def test_a_retry_cancels_the_superseded_intent(market: Market) -> None:
    _, b, order = await card_order(market)
    first = order["payment"]["intent_id"]
    await decline(market.stripe, first)
    await wait_for(market.client, order["id"], b, "payment_failed")
    r = await market.client.post(f"/v1/orders/{order['id']}/payment-attempts", headers=b.auth)
    assert r.status_code == 200, r.text
    assert r.json()["payment"]["intent_id"] != first
    # The buyer still holds the first client secret: that intent can no longer be paid.
    assert (await stripe_get(market, f"/v1/payment_intents/{first}"))["status"] == "canceled"


async def test_a_late_payment_of_a_settled_order_is_refunded(market: Market) -> None:
    """A second PaymentIntent of the order (a superseded attempt) succeeds after the order
    was settled by another: the market refunds it and says so to the buyer and staff."""
    holder, b, order = await card_order(market)
    paid = order["payment"]["intent_id"]
    await pay(market.stripe, paid)
    await wait_for(market.client, order["id"], b, "active")
    async with httpx.AsyncClient(base_url=market.stripe, auth=(LOCALSTRIPE_KEY, "")) as stripe:
        r = await stripe.post("/v1/payment_intents", data={
            "amount": order["price"]["amount"], "currency": "cny", "metadata[order_id]": order["id"],
            "payment_method_types[]": "card"})
        assert r.status_code == 200, r.text
    late = r.json()["id"]
    await pay(market.stripe, late)
    seen = await wait_returned(market, order["id"], b)
    assert seen["status"] == "active" and seen["payment"]["reference"] == f"stripe:{paid}"
    [returned] = seen["payment"]["returns"]
    assert returned["cause"] == "superseded-attempt"
    await assert_refunded_at_stripe(market, returned, late, order["price"]["amount"])
    staff = (await market.client.get(f"/v1/orders/{order['id']}", headers=market.operator.auth)).json()
    assert staff["payment"]["returns"] == seen["payment"]["returns"]
    assert (await market.client.get(f"/v1/orders/{order['id']}", headers=holder.auth)).json()["payment"]["returns"] \
        == []
    assert (await trade_types(market, order["id"])).count("trade.payment_refunded") == 1


async def test_a_dispute_refunds_the_intent_that_paid(market: Market) -> None:
    """An order whose latest attempt is not the one that paid (here a newer, unpaid intent
    made the order's ``intent_id``, as a retry racing a late payment leaves it): the
    dispute's refund goes to the intent named in ``payment.reference``."""
    from sqlalchemy import update

    from market.core import db
    from market.trading.models import Order

    _, b, order = await card_order(market)
    paid = order["payment"]["intent_id"]
    await pay(market.stripe, paid)
    await wait_for(market.client, order["id"], b, "active")
    async with httpx.AsyncClient(base_url=market.stripe, auth=(LOCALSTRIPE_KEY, "")) as stripe:
        r = await stripe.post("/v1/payment_intents", data={
            "amount": order["price"]["amount"], "currency": "cny", "metadata[order_id]": order["id"],
            "payment_method_types[]": "card"})
        assert r.status_code == 200, r.text
    newer = r.json()["id"]
    engine = db.make_engine(market.parties.settings.sqlalchemy_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(Order).where(Order.id == order["id"]).values(intent_id=newer))
    finally:
        await engine.dispose()
    r = await market.client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": "not as described"},
                                 headers=b.auth)
    assert r.status_code == 201, r.text
    r = await market.client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=market.operator.auth,
                                 json={"decision": "refund", "reason": "checked"})
    assert r.status_code == 200, r.text
    refunded = (await market.client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()
    assert refunded["status"] == "refunded" and refunded["payment"]["reference"] == f"stripe:{paid}"
    refund_id = r.json()["refund"]["reference"].removeprefix("stripe:")
    assert (await stripe_get(market, f"/v1/refunds/{refund_id}"))["payment_intent"] == paid
