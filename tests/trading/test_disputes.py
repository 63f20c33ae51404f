"""Disputes over HTTP: who may open and resolve one, the dispute window, one open dispute
per order, refunds that end access at once (bank transfer, free, and by card through
the gateway, with a retry after a gateway failure), and the confidential ledger entries."""

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from market.core.audit import TradeDocument, document_digest, text_digest
from market.core.clock import FakeClock
from market.payments.gateway import GatewayError, RefundResult, WebhookEvent
from tests.conftest import Parties, Party, assert_problem
from tests.payments.localstripe_server import LOCALSTRIPE_KEY, WEBHOOK_SECRET, localstripe, pay  # noqa: F401
from tests.registry_support import concurrently, ledger_items, own_app, salted_detail
from tests.trading.support import buyer, offer, pay_by_bank, place

REASON = "the file holds 2025 data, the terms promise 2026"


async def order_entries(client: Any, order_id: str) -> list[dict[str, Any]]:
    return [i["entry"] for i in await ledger_items(client, order_id, kind="order")]


async def paid_order(client: Any, parties: Parties, operator: Party) -> tuple[Any, Any, dict[str, Any]]:
    """A holder, a buyer and its bank-transfer order, settled."""
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    r = await pay_by_bank(client, operator, order)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    return holder, b, r.json()


async def dispute(client: Any, who: Any, order_id: str, reason: str = REASON) -> Any:
    return await client.post(f"/v1/orders/{order_id}/disputes", json={"reason": reason}, headers=who.auth)


async def resolve(client: Any, who: Any, dispute_id: str, decision: str, reason: str = "checked the file",
                  **extra: Any) -> Any:
    return await client.post(f"/v1/disputes/{dispute_id}/resolution", headers=who.auth,
                             json={"decision": decision, "reason": reason, **extra})


async def order_status(client: Any, who: Any, order_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/orders/{order_id}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def documents_of(client: Any, order_id: str) -> list[TradeDocument]:
    async def run() -> list[TradeDocument]:
        async with client.app.state.services.read_sessionmaker() as s:
            rows = (await s.execute(select(TradeDocument).where(TradeDocument.subject == f"order:{order_id}")
                                    .order_by(TradeDocument.id))).scalars().all()
            return list(rows)

    return client.blocking_portal.call(run)


async def test_who_may_open_see_and_resolve_a_dispute(client, parties: Parties, operator: Party,
                                                      regulator: Party) -> None:
    holder, b, order = await paid_order(client, parties, operator)
    stranger = await buyer(client, parties)
    assert_problem(await dispute(client, stranger, order["id"]), 404)
    assert_problem(await dispute(client, holder, order["id"]), 403, "not-buyer")
    assert_problem(await dispute(client, operator, order["id"]), 403, "not-buyer")
    assert_problem(await dispute(client, regulator, order["id"]), 403, "not-buyer")
    assert_problem(await client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": ""}, headers=b.auth), 422)
    assert_problem(await client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": REASON}), 401)

    r = await dispute(client, b, order["id"])
    assert r.status_code == 201, r.text
    opened = r.json()
    assert (opened["status"], opened["order_id"], opened["buyer"], opened["reason"]) == \
        ("open", order["id"], b.id, REASON)
    assert opened["refund"] is None and opened["resolved_at"] is None and opened["order_status"] == "active"
    assert_problem(await dispute(client, b, order["id"]), 409, "dispute-open")

    for who in (b, holder, operator, regulator):
        r = await client.get(f"/v1/disputes/{opened['id']}", headers=who.auth)
        assert r.status_code == 200 and r.json() == opened, r.text
        r = await client.get(f"/v1/orders/{order['id']}/disputes", headers=who.auth)
        assert r.status_code == 200 and r.json() == [opened], r.text
    assert_problem(await client.get(f"/v1/disputes/{opened['id']}", headers=stranger.auth), 404)
    assert_problem(await client.get(f"/v1/orders/{order['id']}/disputes", headers=stranger.auth), 404)
    assert_problem(await client.get("/v1/disputes/dsp_nonesuch", headers=operator.auth), 404)

    # Only operators resolve; a regulator oversees, it does not decide refunds.
    for who in (regulator, holder, b):
        assert_problem(await resolve(client, who, opened["id"], "refund"), 403, "wrong-role")
    assert_problem(await resolve(client, stranger, opened["id"], "refund"), 403, "wrong-role")
    assert_problem(await resolve(client, operator, opened["id"], "maybe"), 422)
    assert_problem(await resolve(client, operator, opened["id"], "reject", reason=""), 422)
    assert_problem(await resolve(client, operator, "dsp_nonesuch", "reject"), 404)
    assert (await client.get(f"/v1/disputes/{opened['id']}", headers=b.auth)).json() == opened


async def test_a_rejected_dispute_keeps_access_and_may_be_followed_by_another(client, parties: Parties,
                                                                              operator: Party) -> None:
    holder, b, order = await paid_order(client, parties, operator)
    first = (await dispute(client, b, order["id"])).json()
    assert_problem(await resolve(client, operator, first["id"], "reject", reference="CMB-R-1"), 422,
                   "reference-not-expected")
    r = await resolve(client, operator, first["id"], "reject", reason="the file matches the terms")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["resolution_reason"]) == ("rejected", "the file matches the terms")
    assert r.json()["resolved_at"] is not None and r.json()["refund"] is None
    assert (await order_status(client, b, order["id"]))["status"] == "active"
    for decision in ("reject", "refund"):  # resolved once
        assert_problem(await resolve(client, operator, first["id"], decision), 409, "invalid-transition")

    second = await dispute(client, b, order["id"], "still wrong")
    assert second.status_code == 201, second.text
    types = [e["type"] for e in await order_entries(client, order["id"])]
    assert types == ["trade.placed", "trade.settled", "trade.disputed", "trade.dispute_rejected", "trade.disputed"]


async def test_a_bank_transfer_refund_ends_access_at_once(client, parties: Parties, operator: Party) -> None:
    holder, b, order = await paid_order(client, parties, operator)
    opened = (await dispute(client, b, order["id"])).json()
    assert_problem(await resolve(client, operator, opened["id"], "refund", reference=""), 422)
    r = await resolve(client, operator, opened["id"], "refund", reason="wrong year", reference="CMB-R-0042")
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert (resolved["status"], resolved["order_status"]) == ("refunded", "refunded")
    assert resolved["refund"]["amount"] == order["price"] and resolved["refund"]["method"] == "bank_transfer"
    assert resolved["refund"]["reference"] == "bank:CMB-R-0042"
    seen = await order_status(client, b, order["id"])
    assert seen["status"] == "refunded" and seen["refunded_at"] == resolved["refund"]["refunded_at"]
    assert (await order_status(client, holder, order["id"]))["status"] == "refunded"

    # Resolved: neither decision again (a bank refund has nothing to retry); no new dispute.
    for decision in ("refund", "reject"):
        assert_problem(await resolve(client, operator, opened["id"], decision), 409, "invalid-transition")
    assert_problem(await dispute(client, b, order["id"]), 409, "invalid-transition")

    # The public ledger: actor market, a salted hash each; the documents say what happened.
    entries = await order_entries(client, order["id"])
    assert [e["type"] for e in entries] == ["trade.placed", "trade.settled", "trade.disputed", "trade.refunded"]
    text = json.dumps(entries)
    for secret in (b.id, holder.id, REASON, text_digest(REASON), "CMB-R-0042", str(order["price"]["amount"])):
        assert secret not in text
    for e in entries:
        assert e["actor"] == "market" and set(e["data"]) == {"document_sha256"}
    docs = {d.type: d for d in documents_of(client, order["id"])}
    for e in entries:
        assert e["data"]["document_sha256"] == docs[e["type"]].document_sha256 == \
            document_digest(json.loads(docs[e["type"]].document))
    disputed = json.loads(docs["trade.disputed"].document)
    assert (disputed["order"], disputed["dispute"]) == (order["id"], opened["id"])
    assert (await salted_detail(client, disputed))["reason"] == REASON
    refunded = json.loads(docs["trade.refunded"].document)
    assert (refunded["order"], refunded["dispute"], refunded["amount"], refunded["method"]) == (
        order["id"], opened["id"], order["price"], "bank_transfer")
    assert (await salted_detail(client, refunded))["reason"] == "wrong year"
    assert REASON not in docs["trade.disputed"].document and text_digest(REASON) not in docs["trade.disputed"].document


async def test_a_bank_refund_needs_the_banks_reference(client, parties: Parties, operator: Party) -> None:
    """Without the reference of the refund the bank sent, nothing is resolved (a resolved
    dispute could never take it afterwards); with it, the refund and its ledger document
    carry it."""
    _, b, order = await paid_order(client, parties, operator)
    opened = (await dispute(client, b, order["id"])).json()
    problem = assert_problem(await resolve(client, operator, opened["id"], "refund"), 422, "reference-required")
    assert [e["field"] for e in problem["errors"]] == ["reference"]
    assert_problem(await resolve(client, operator, opened["id"], "refund", reference=None), 422, "reference-required")
    assert (await client.get(f"/v1/disputes/{opened['id']}", headers=b.auth)).json() == opened  # nothing changed
    assert (await order_status(client, b, order["id"]))["status"] == "active"
    assert [e["type"] for e in await order_entries(client, order["id"])] == \
        ["trade.placed", "trade.settled", "trade.disputed"]

    r = await resolve(client, operator, opened["id"], "refund", reference="ICBC-RF-20260501-7")
    assert r.status_code == 200, r.text
    assert r.json()["refund"]["reference"] == "bank:ICBC-RF-20260501-7"
    refunded = json.loads({d.type: d for d in documents_of(client, order["id"])}["trade.refunded"].document)
    assert refunded["reference"] == "bank:ICBC-RF-20260501-7"


async def test_a_free_order_may_be_disputed_and_its_refund_only_ends_access(client, parties: Parties,
                                                                           operator: Party) -> None:
    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "free")
    opened = (await dispute(client, b, order["id"])).json()
    assert_problem(await resolve(client, operator, opened["id"], "refund", reference="CMB-1"), 422,
                   "reference-not-expected")
    r = await resolve(client, operator, opened["id"], "refund")
    assert r.status_code == 200, r.text
    assert r.json()["refund"] == {"amount": {"amount": 0, "currency": "CNY"}, "method": "free",
                                  "reference": f"free:{opened['id']}",
                                  "refunded_at": r.json()["refund"]["refunded_at"]}
    assert (await order_status(client, b, order["id"]))["status"] == "refunded"


async def test_only_a_settled_active_order_can_be_disputed(client, parties: Parties, operator: Party) -> None:
    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    unpaid = await place(client, b, listing, "one_time")
    assert_problem(await dispute(client, b, unpaid["id"]), 409, "invalid-transition")
    assert (await client.post(f"/v1/orders/{unpaid['id']}/cancellation", headers=b.auth)).status_code == 200
    assert_problem(await dispute(client, b, unpaid["id"]), 409, "invalid-transition")
    assert (await client.get(f"/v1/orders/{unpaid['id']}/disputes", headers=b.auth)).json() == []


async def test_opening_is_idempotent_and_one_of_two_concurrent_disputes_wins(client, parties: Parties,
                                                                             operator: Party) -> None:
    _, b, order = await paid_order(client, parties, operator)
    url = f"/v1/orders/{order['id']}/disputes"
    responses = await concurrently(client, *[("POST", url, {"json": {"reason": f"reason {i}"}, "headers": b.auth})
                                             for i in range(3)])
    assert sorted(r.status_code for r in responses) == [201, 409, 409], [r.text for r in responses]
    assert len((await client.get(url, headers=b.auth)).json()) == 1

    _, b2, order2 = await paid_order(client, parties, operator)
    headers = {**b2.auth, "Idempotency-Key": "5d1c9a40-7f0e-4a57-8a3c-2f9d7e0b6c11"}
    url2 = f"/v1/orders/{order2['id']}/disputes"
    first = await client.post(url2, json={"reason": REASON}, headers=headers)
    again = await client.post(url2, json={"reason": REASON}, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_two_concurrent_resolutions_decide_once(client, parties: Parties, operator: Party) -> None:
    _, b, order = await paid_order(client, parties, operator)
    opened = (await dispute(client, b, order["id"])).json()
    url = f"/v1/disputes/{opened['id']}/resolution"
    bodies = [{"decision": "refund", "reason": "checked", "reference": "CMB-RF-1"},
              {"decision": "reject", "reason": "checked"},
              {"decision": "refund", "reason": "checked", "reference": "CMB-RF-2"}]
    responses = await concurrently(client, *[("POST", url, {"json": body, "headers": operator.auth})
                                             for body in bodies])
    assert sorted(r.status_code for r in responses) == [200, 409, 409], [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert (await order_status(client, b, order["id"]))["status"] == \
        ("refunded" if winner["status"] == "refunded" else "active")
    types = [e["type"] for e in await order_entries(client, order["id"])]
    assert types.count("trade.refunded") + types.count("trade.dispute_rejected") == 1


async def test_a_download_after_a_refund_is_refused(client, parties: Parties, operator: Party) -> None:
    """The refund commits the order's new status before it answers; the next download is refused."""
    _, b, order = await paid_order(client, parties, operator)
    r = await client.get(f"/v1/orders/{order['id']}/content", headers=b.auth)
    assert r.status_code == 200, r.text
    opened = (await dispute(client, b, order["id"])).json()
    assert (await resolve(client, operator, opened["id"], "refund", reference="CMB-RF-1")).status_code == 200
    assert (await order_status(client, b, order["id"]))["status"] == "refunded"
    assert_problem(await client.get(f"/v1/orders/{order['id']}/content", headers=b.auth), 409, "no-access")


async def test_a_refund_racing_a_download(client, parties: Parties, operator: Party) -> None:
    """Whichever commits first: a download answered before the refund, or refused after it;
    never a download after the refund has answered."""
    for _ in range(2):
        _, b, order = await paid_order(client, parties, operator)
        opened = (await dispute(client, b, order["id"])).json()
        refund, download = await concurrently(
            client,
            ("POST", f"/v1/disputes/{opened['id']}/resolution",
             {"json": {"decision": "refund", "reason": "checked", "reference": "CMB-RF-1"}, "headers": operator.auth}),
            ("GET", f"/v1/orders/{order['id']}/content", {"headers": b.auth}))
        assert refund.status_code == 200, refund.text
        if download.status_code != 200:
            assert_problem(download, 409, "no-access")
        assert_problem(await client.get(f"/v1/orders/{order['id']}/content", headers=b.auth), 409, "no-access")


# -- window: a market with a fake clock ----------------------------------------------------


async def test_the_dispute_window_closes(databases, tmp_path) -> None:
    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock, dispute_window="2h") as app:
        client, parties, operator = app.client, app.parties, app.operator
        _, listing = await offer(client, parties, operator)
        b = await buyer(client, parties)
        early, late = await place(client, b, listing, "free"), await place(client, b, listing, "free")
        clock.advance(timedelta(hours=1, minutes=59))
        assert (await dispute(client, b, early["id"])).status_code == 201
        clock.advance(timedelta(minutes=2))
        assert_problem(await dispute(client, b, late["id"]), 422, "dispute-window-closed")
        assert (await client.get(f"/v1/orders/{late['id']}/disputes", headers=b.auth)).json() == []


# -- card refunds through the gateway ------------------------------------------------------


class FailingGateway:
    """Stands in for the card gateway while it is down."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    async def refund(self, intent_id: str, amount: int, idempotency_key: str) -> RefundResult:
        self.calls.append((intent_id, amount, idempotency_key))
        raise GatewayError("the payment gateway could not be reached")


async def test_a_card_refund_goes_back_through_the_gateway_and_is_retried_after_a_failure(
        databases, tmp_path, localstripe: str) -> None:  # noqa: F811
    from tests.payments.localstripe_server import _api

    settings = {"stripe_secret_key": LOCALSTRIPE_KEY, "stripe_webhook_secret": WEBHOOK_SECRET,
                "stripe_api_base": localstripe}
    async with own_app(databases, tmp_path, **settings) as app:
        client, parties, operator = app.client, app.parties, app.operator
        state = client.app.state.services
        _, listing = await offer(client, parties, operator)
        b = await buyer(client, parties)

        async def card_order() -> dict[str, Any]:
            order = await place(client, b, listing, "one_time", payment_method="stripe")
            intent = order["payment"]["intent_id"]
            assert (await pay(localstripe, intent))["status"] == "succeeded"

            async def settle() -> str:
                from market.trading import checkout

                return await checkout.on_event(state, WebhookEvent(f"evt_{intent}", "payment_intent.succeeded",
                                                                   intent))

            assert client.blocking_portal.call(settle) == "settled"
            settled = await order_status(client, b, order["id"])
            assert settled["status"] == "active", settled
            return settled

        # A refund straight through.
        order = await card_order()
        opened = (await dispute(client, b, order["id"])).json()
        r = await resolve(client, operator, opened["id"], "refund")
        assert r.status_code == 200, r.text
        reference = r.json()["refund"]["reference"]
        assert reference.startswith("stripe:re_") and r.json()["order_status"] == "refunded"
        async with _api(localstripe) as http:
            refund = (await http.get(f"/v1/refunds/{reference.removeprefix('stripe:')}")).json()
        assert (refund["amount"], refund["payment_intent"]) == (order["price"]["amount"], order["payment"]["intent_id"])
        assert_problem(await resolve(client, operator, opened["id"], "refund"), 409, "invalid-transition")

        # The gateway down: access ends all the same, the refund is due; a retry makes it once.
        order = await card_order()
        opened = (await dispute(client, b, order["id"])).json()
        real, failing = state.stripe, FailingGateway()
        state.stripe = failing
        try:
            assert_problem(await resolve(client, operator, opened["id"], "refund"), 502, "payment-gateway-unavailable")
            assert_problem(await resolve(client, operator, opened["id"], "refund", reason="retry"), 502)
        finally:
            state.stripe = real
        assert len(failing.calls) == 2 and failing.calls[0] == failing.calls[1]
        assert failing.calls[0][:2] == (order["payment"]["intent_id"], order["price"]["amount"])
        seen = (await client.get(f"/v1/disputes/{opened['id']}", headers=b.auth)).json()
        assert seen["status"] == "refunded" and seen["order_status"] == "refunded"
        assert seen["refund"]["reference"] is None  # due at the gateway
        assert (await order_status(client, b, order["id"]))["status"] == "refunded"
        assert_problem(await resolve(client, operator, opened["id"], "reject"), 409, "invalid-transition")

        r = await resolve(client, operator, opened["id"], "refund", reason="retry")
        assert r.status_code == 200, r.text
        assert r.json()["refund"]["reference"].startswith("stripe:re_")
        assert r.json()["resolution_reason"] == "checked the file"  # the decision stands as first made
        assert_problem(await resolve(client, operator, opened["id"], "refund"), 409, "invalid-transition")
        types = [e["type"] for e in await order_entries(client, order["id"])]
        assert types.count("trade.refunded") == 1
