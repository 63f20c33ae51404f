"""Contract negotiation, provider side: the conformance kit's 15 mandatory scenarios
(eclipse-dataspacetck/dsp-tck, ContractNegotiationProvider01–03Test), each driven on the
provider's side by what really moves an order here — a free plan settled at once, a
priced one offered and paid by bank transfer, the holder's approval or refusal, a
regulator's freeze — and the protocol's own rules around them."""

from typing import Any

from sqlalchemy import select

from market.core.audit import TradeDocument
from tests.dsp.support import Consumer, dataset_id, offer_id, regulator_action, valid
from tests.trading.support import FREE, ONE_TIME, offer, pay_by_bank


async def listing_of(market: Any, plans: list[dict[str, Any]] | None = None, **kw: Any) -> tuple[Any, dict[str, Any]]:
    return await offer(market.client, market.parties, market.operator, plans=plans or [ONE_TIME, FREE], **kw)


async def order_of(c: Consumer, listing: dict[str, Any]) -> dict[str, Any]:
    r = await c.client.get("/v1/orders", headers=c.buyer.auth, params={"side": "buyer"})
    assert r.status_code == 200, r.text
    return next(o for o in r.json()["items"] if o["listing_id"] == listing["id"])


async def started(c: Consumer, listing: dict[str, Any], model: str = "one_time") -> tuple[str, str]:
    consumer_pid, r = await c.request(listing, model)
    assert r.status_code == 201, r.text
    assert valid(r.json())["state"] == "REQUESTED" and r.json()["consumerPid"] == consumer_pid
    return r.json()["providerPid"], consumer_pid


async def offered(c: Consumer, listing: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    provider_pid, consumer_pid = await started(c, listing)
    message = await c.wait_message(consumer_pid, "/offers")
    await c.wait_state(provider_pid, "OFFERED")
    return provider_pid, consumer_pid, message


async def agreed(c: Consumer, listing: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    provider_pid, consumer_pid = await started(c, listing, "free")
    message = await c.wait_message(consumer_pid, "/agreement")
    await c.wait_state(provider_pid, "AGREED")
    return provider_pid, consumer_pid, message


def refused(r: Any, provider_pid: str | None = None) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = valid(r.json())
    assert body["@type"] == "ContractNegotiationError" and body["code"] and body["reason"], body
    if provider_pid is not None:
        assert body["providerPid"] == provider_pid
    return dict(body)


def steps_of(market: Any, order_id: str) -> list[str]:
    async def run() -> list[str]:
        async with market.client.app.state.services.read_sessionmaker() as s:
            rows = (await s.execute(select(TradeDocument.type).where(TradeDocument.subject == f"order:{order_id}")
                                    .order_by(TradeDocument.id))).scalars().all()
            return [t for t in rows if t.startswith("dsp.")]

    return market.client.blocking_portal.call(run)  # type: ignore[no-any-return]


# -- CN_01: contract request provider scenarios -------------------------------------


async def test_CN_01_01_offer_received_then_the_consumer_terminates(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, message = await offered(consumer, listing)
    offer_ = message["offer"]
    assert offer_["@id"] == offer_id(listing, "one_time") and offer_["target"] == dataset_id(listing)
    assert offer_["obligation"][0]["constraint"][0]["rightOperand"] == "8800.00"
    r = await consumer.terminate(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    assert await consumer.state(provider_pid) == "TERMINATED"
    order = await order_of(consumer, listing)
    assert order["status"] == "cancelled"
    assert steps_of(market, order["id"]) == ["dsp.negotiation_requested", "dsp.negotiation_offered",
                                              "dsp.negotiation_terminated"]


async def test_CN_01_02_offer_then_a_counter_offer_the_provider_terminates(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    r = await consumer.counter(provider_pid, consumer_pid, listing, "free")
    assert r.status_code == 200, r.text
    assert r.json()["@type"] == "ContractNegotiation"
    ended = await consumer.wait_message(consumer_pid, "/termination")
    assert ended["code"] == "counter-offer-refused" and ended["providerPid"] == provider_pid
    await consumer.wait_state(provider_pid, "TERMINATED")
    assert (await order_of(consumer, listing))["status"] == "cancelled"


async def test_CN_01_03_offer_accepted_paid_agreed_verified_finalized(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    r = await consumer.accept(provider_pid, consumer_pid)
    assert r.status_code == 200 and r.json()["state"] == "ACCEPTED", r.text
    assert consumer.got(consumer_pid, "/agreement") == []  # accepted, not yet paid
    order = await order_of(consumer, listing)
    assert (await pay_by_bank(market.client, market.operator, order)).status_code == 200
    agreement = (await consumer.wait_message(consumer_pid, "/agreement"))["agreement"]
    assert agreement["@id"] == f"urn:market:agreement:{order['id']}"
    assert agreement["assignee"] == f"urn:market:account:{consumer.buyer.id}"
    assert agreement["target"] == dataset_id(listing)
    await consumer.wait_state(provider_pid, "AGREED")
    r = await consumer.verify(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    event = await consumer.wait_message(consumer_pid, "/events")
    assert event["eventType"] == "FINALIZED"
    assert await consumer.state(provider_pid) == "FINALIZED"
    assert steps_of(market, order["id"]) == [
        "dsp.negotiation_requested", "dsp.negotiation_offered", "dsp.negotiation_accepted",
        "dsp.negotiation_agreed", "dsp.negotiation_verified", "dsp.negotiation_finalized"]


async def test_CN_01_04_agreement_verified_finalized_after_the_holders_approval(market: Any,
                                                                                consumer: Consumer) -> None:
    holder, listing = await listing_of(market, plans=[FREE], approval_required=True)
    provider_pid, consumer_pid = await started(consumer, listing, "free")
    order = await order_of(consumer, listing)
    assert order["status"] == "pending_approval" and await consumer.state(provider_pid) == "REQUESTED"
    r = await market.client.post(f"/v1/orders/{order['id']}/approval", headers=holder.auth,
                                 json={"decision": "approve", "reason": "fits"})
    assert r.status_code == 200, r.text
    agreement = (await consumer.wait_message(consumer_pid, "/agreement"))["agreement"]
    assert "obligation" not in agreement  # free: nothing to pay
    assert consumer.got(consumer_pid, "/offers") == []
    r = await consumer.verify(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    assert (await consumer.wait_message(consumer_pid, "/events"))["eventType"] == "FINALIZED"
    await consumer.wait_state(provider_pid, "FINALIZED")


# -- CN_02: terminations ----------------------------------------------------------------


async def test_CN_02_01_the_holder_rejects_and_the_provider_terminates(market: Any, consumer: Consumer) -> None:
    holder, listing = await listing_of(market, plans=[FREE], approval_required=True)
    provider_pid, consumer_pid = await started(consumer, listing, "free")
    order = await order_of(consumer, listing)
    r = await market.client.post(f"/v1/orders/{order['id']}/approval", headers=holder.auth,
                                 json={"decision": "reject", "reason": "not for this use"})
    assert r.status_code == 200, r.text
    ended = await consumer.wait_message(consumer_pid, "/termination")
    assert ended["code"] == "order-rejected"
    await consumer.wait_state(provider_pid, "TERMINATED")


async def test_CN_02_02_the_consumer_terminates_while_requested(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market, plans=[FREE], approval_required=True)
    provider_pid, consumer_pid = await started(consumer, listing, "free")
    r = await consumer.terminate(provider_pid, consumer_pid)
    assert r.status_code == 200 and r.json()["state"] == "TERMINATED", r.text
    assert (await order_of(consumer, listing))["status"] == "cancelled"


async def test_CN_02_03_agreed_then_the_consumer_terminates(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await agreed(consumer, listing)
    r = await consumer.terminate(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    assert await consumer.state(provider_pid) == "TERMINATED"
    # The contract stands: the process ended, the order did not (money goes back only by dispute).
    assert (await order_of(consumer, listing))["status"] == "active"


async def test_CN_02_04_offer_after_approval_then_the_consumer_terminates(market: Any, consumer: Consumer) -> None:
    holder, listing = await listing_of(market, plans=[ONE_TIME], approval_required=True)
    provider_pid, consumer_pid = await started(consumer, listing)
    order = await order_of(consumer, listing)
    assert consumer.got(consumer_pid, "/offers") == []
    r = await market.client.post(f"/v1/orders/{order['id']}/approval", headers=holder.auth,
                                 json={"decision": "approve", "reason": "fits"})
    assert r.status_code == 200, r.text
    await consumer.wait_message(consumer_pid, "/offers")
    await consumer.wait_state(provider_pid, "OFFERED")
    assert (await consumer.terminate(provider_pid, consumer_pid)).status_code == 200
    assert await consumer.state(provider_pid) == "TERMINATED"
    assert (await order_of(consumer, listing))["status"] == "cancelled"


async def test_CN_02_05_offer_then_a_regulator_freeze_terminates(market: Any, consumer: Consumer,
                                                                 market_regulator: Any) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    await regulator_action(market.client, market_regulator, "freeze_listing", listing["id"])
    ended = await consumer.wait_message(consumer_pid, "/termination")
    assert ended["code"] == "frozen"
    await consumer.wait_state(provider_pid, "TERMINATED")
    assert (await order_of(consumer, listing))["status"] == "cancelled"


async def test_CN_02_06_offer_accepted_then_a_regulator_freeze_terminates(market: Any, consumer: Consumer,
                                                                          market_regulator: Any) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    assert (await consumer.accept(provider_pid, consumer_pid)).status_code == 200
    await regulator_action(market.client, market_regulator, "freeze_asset", listing["asset_id"])
    assert (await consumer.wait_message(consumer_pid, "/termination"))["code"] == "frozen"
    await consumer.wait_state(provider_pid, "TERMINATED")


async def test_CN_02_07_agreed_verified_then_the_provider_terminates_as_the_asset_is_frozen(
        market: Any, consumer: Consumer, market_regulator: Any) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await agreed(consumer, listing)
    await regulator_action(market.client, market_regulator, "freeze_asset", listing["asset_id"])
    assert await consumer.state(provider_pid) == "AGREED"  # agreed stays agreed until it is verified
    r = await consumer.verify(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    ended = await consumer.wait_message(consumer_pid, "/termination")
    assert ended["code"] == "no-access" and "frozen" in ended["reason"][0]
    await consumer.wait_state(provider_pid, "TERMINATED")
    assert consumer.got(consumer_pid, "/events") == []


# -- CN_03: negative scenarios -------------------------------------------------------------


async def test_CN_03_01_a_termination_after_finalized_is_an_error(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await consumer.finalized(listing)
    refused(await consumer.terminate(provider_pid, consumer_pid), provider_pid)
    assert await consumer.state(provider_pid) == "FINALIZED"


async def test_CN_03_02_verification_while_offered_is_an_error(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    assert refused(await consumer.verify(provider_pid, consumer_pid), provider_pid)["code"] == "invalid-transition"
    assert await consumer.state(provider_pid) == "OFFERED"


async def test_CN_03_03_verification_while_accepted_is_an_error(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    assert (await consumer.accept(provider_pid, consumer_pid)).status_code == 200
    refused(await consumer.verify(provider_pid, consumer_pid), provider_pid)
    assert await consumer.state(provider_pid) == "ACCEPTED"


async def test_CN_03_04_a_second_counter_offer_is_an_error(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid, _ = await offered(consumer, listing)
    assert (await consumer.counter(provider_pid, consumer_pid, listing, "one_time")).status_code == 200
    refused(await consumer.counter(provider_pid, consumer_pid, listing, "one_time"), provider_pid)
    assert await consumer.state(provider_pid) == "TERMINATED"


# -- the protocol's rules around them --------------------------------------------------


async def test_a_refused_gate_answers_requested_then_terminates_with_the_problem_type(
        market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market, plans=[FREE])
    consumer_pid, r = await consumer.request(listing, "free", purpose="credit_scoring")
    assert r.status_code == 201 and r.json()["state"] == "REQUESTED", r.text
    ended = await consumer.wait_message(consumer_pid, "/termination")
    assert ended["code"] == "purpose-not-licensed"
    await consumer.wait_state(r.json()["providerPid"], "TERMINATED")
    r = await consumer.client.get("/v1/orders", headers=consumer.buyer.auth, params={"side": "buyer"})
    assert r.json()["items"] == []  # no order was placed


async def test_a_narrowed_purpose_is_the_orders(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market, plans=[FREE])
    purpose = listing["licence"]["purposes"][-1]
    consumer_pid, r = await consumer.request(listing, "free", purpose=purpose)
    assert r.status_code == 201, r.text
    agreement = (await consumer.wait_message(consumer_pid, "/agreement"))["agreement"]
    constraint = agreement["permission"][0]["constraint"][0]
    assert constraint["leftOperand"] == "purpose"
    assert constraint["rightOperand"] == [{"@id": f"urn:market:purpose:{purpose}"}]
    assert (await order_of(consumer, listing))["purpose"] == purpose


async def test_the_same_request_again_is_the_same_negotiation(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    consumer_pid, first = await consumer.request(listing, "one_time")
    _, again = await consumer.request(listing, "one_time", consumer_pid=consumer_pid)
    assert again.status_code == 201 and again.json()["providerPid"] == first.json()["providerPid"]
    await consumer.wait_message(consumer_pid, "/offers")
    r = await consumer.client.get("/v1/orders", headers=consumer.buyer.auth, params={"side": "buyer"})
    assert len(r.json()["items"]) == 1


async def test_bad_requests_are_400_and_change_nothing(market: Any, consumer: Consumer) -> None:
    _, listing = await listing_of(market)
    _, r = await consumer.request({**listing, "id": "lst_nosuch"})
    assert refused(r)["code"] == "unknown-offer"
    body = consumer.message("ContractRequestMessage", consumerPid="urn:uuid:x", callbackAddress=consumer.address,
                            offer={"@type": "Offer", "@id": offer_id(listing, "free"),
                                   "target": "urn:market:listing:lst_other", "permission": [{"action": "use"}]})
    assert refused(await consumer.post("/negotiations/request", body))["code"] == "target-mismatch"
    refused(await consumer.post("/negotiations/request", {**body, "@context": "https://example.com/ctx"}))
    refused(await consumer.post("/negotiations/request", {**body, "@type": "ContractOfferMessage"}))
    r = await consumer.client.post("/dsp/2025-1/negotiations/request", content=b"{not json",
                                   headers={**consumer.buyer.auth, "content-type": "application/json"})
    refused(r)
    r = await consumer.client.get("/v1/orders", headers=consumer.buyer.auth, params={"side": "buyer"})
    assert r.json()["items"] == []


async def test_strangers_and_other_parties_get_404(market: Any, consumer: Consumer, receiver: Any) -> None:
    _, listing = await listing_of(market)
    provider_pid, consumer_pid = await started(consumer, listing)
    other = Consumer(market.client, await market.parties.verified(["buyer"]), receiver)
    for headers in ({}, {"Authorization": "Bearer nosuch"}, other.buyer.auth):
        r = await market.client.get(f"/dsp/2025-1/negotiations/{provider_pid}", headers=headers)
        assert r.status_code == 404 and r.json()["@type"] == "ContractNegotiationError", r.text
        r = await consumer.post(f"/negotiations/{provider_pid}/termination", consumer.message(
            "ContractNegotiationTerminationMessage", providerPid=provider_pid, consumerPid=consumer_pid), headers)
        assert r.status_code == 404, r.text
    r = await market.client.get("/dsp/2025-1/negotiations/dng_nosuch", headers=consumer.buyer.auth)
    assert r.status_code == 404
    await consumer.wait_state(provider_pid, "OFFERED")
