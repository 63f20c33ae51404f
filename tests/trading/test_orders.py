"""Orders over HTTP: every state and gate, the contract, and what the public ledger
shows (only salted hashes). A refused order changes nothing (but a watched refusal is
kept for the regulator)."""

import base64
import json
from typing import Any

from sqlalchemy import func, select

from ledger.bundle import verify_bundle
from market.core.audit import TradeDocument
from market.oversight.models import Refusal
from market.trading.models import Order
from tests.conftest import Parties, Party, assert_problem
from tests.listings.support import LICENCE
from tests.registry_support import ledger_items, wait_integrated
from tests.regulator_acts import act
from tests.trading.support import FREE, ONE_TIME, buyer, offer, order_body, pay_by_bank, place, plan_of


def db_count(client: Any, model: Any, *where: Any) -> int:
    async def run() -> int:
        async with client.app.state.services.read_sessionmaker() as s:
            return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()

    return client.blocking_portal.call(run)


async def order_entries(client: Any, order_id: str) -> list[dict[str, Any]]:
    return [i["entry"] for i in await ledger_items(client, order_id, kind="order")]


async def test_a_free_order_is_active_at_once_with_a_contract(client, parties: Parties, operator: Party,
                                                              tmp_path) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "free")
    assert order["status"] == "active" and order["price"] == {"amount": 0, "currency": "CNY"}
    assert order["terms"]["terms_version"] == 1 and order["terms"]["terms_sha256"] == listing["terms_sha256"]
    assert order["approvals"] == {"holder": "not_required", "regulator": "not_required"}
    assert order["expires_at"] is not None and order["payment"]["reference"] == f"free:{order['id']}"

    await wait_integrated(client, f"order:{order['id']}")
    r = await client.get(f"/v1/orders/{order['id']}/contract", headers=b.auth)
    assert r.status_code == 200, r.text
    bundle = r.json()
    vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
    assert verify_bundle(bundle, vkey).status == "valid"
    contract = bundle["document"]
    assert contract["order"] == order["id"] and contract["buyer"]["id"] == b.id
    assert contract["provider"]["id"] == holder.id and contract["purpose"] == "research"
    assert contract["terms_sha256"] == listing["terms_sha256"] and contract["licence"] == LICENCE
    assert contract["registration_number"] == listing["registration_number"]
    assert len(base64.b64decode(contract["salt"])) == 32
    for who in (holder, operator):
        assert (await client.get(f"/v1/orders/{order['id']}/contract", headers=who.auth)).json() == bundle

    # The public ledger: actor market, a salted hash, nothing else.
    entries = await order_entries(client, order["id"])
    assert [e["type"] for e in entries] == ["trade.placed", "trade.settled"]
    text = json.dumps(entries)
    for secret in (b.id, holder.id, listing["id"], "research", str(ONE_TIME["price"]["amount"])):
        assert secret not in text
    for e in entries:
        assert e["actor"] == "market" and set(e["data"]) == {"document_sha256"}


async def test_bank_transfer_settles_on_the_exact_amount(client, parties: Parties, operator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    assert order["status"] == "awaiting_payment"
    assert order["fee"] == {"amount": 44_000, "currency": "CNY"}  # 5 % of 880,000 fen
    assert order["provider_share"]["amount"] == 836_000
    url = f"/v1/orders/{order['id']}/payment"
    wrong = {"reference": "CMB-1", "amount": {"amount": 879_999, "currency": "CNY"}}
    problem = assert_problem(await client.post(url, json=wrong, headers=operator.auth), 422, "amount-mismatch")
    # Money in words names its unit: yuan with two decimals, never bare fen.
    assert problem["detail"] == "the transfer of 8799.99 CNY does not equal the price 8800.00 CNY", problem
    usd = {"reference": "CMB-1", "amount": {"amount": 880_000, "currency": "USD"}}
    problem = assert_problem(await client.post(url, json=usd, headers=operator.auth), 422, "amount-mismatch")
    assert "8800.00 USD" in problem["detail"] and "8800.00 CNY" in problem["detail"]
    assert_problem(await client.post(url, json={**wrong, "amount": {"amount": 880000.0, "currency": "CNY"}},
                                     headers=operator.auth), 422)
    assert_problem(await pay_by_bank(client, b, order), 403)  # not the buyer's to say
    assert_problem(await pay_by_bank(client, holder, order), 403)
    assert [e["type"] for e in await order_entries(client, order["id"])] == ["trade.placed"]

    r = await pay_by_bank(client, operator, order)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    assert r.json()["payment"]["reference"] == "bank:CMB-2026-0001"
    assert_problem(await pay_by_bank(client, operator, order), 409)
    assert [e["type"] for e in await order_entries(client, order["id"])] == ["trade.placed", "trade.settled"]


async def test_a_free_plan_cannot_be_ordered_with_a_payment_nor_a_paid_plan_for_free(client, parties: Parties,
                                                                                   operator: Party) -> None:
    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    for body in (order_body(listing, "free", payment_method="bank_transfer"),
                 order_body(listing, "one_time", payment_method="free")):
        assert_problem(await client.post("/v1/orders", json=body, headers=b.auth), 422, "bad-payment-method")
    body = order_body(listing, "one_time", payment_method="stripe")
    if not client.app.state.services.settings.stripe_secret_key:
        assert_problem(await client.post("/v1/orders", json=body, headers=b.auth), 422, "payment-method-unavailable")


async def test_gates_refuse_and_change_nothing(client, parties: Parties, operator: Party, regulator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    before = db_count(client, Order, Order.listing_id == listing["id"])
    b = await buyer(client, parties)
    # Not a buyer, not verified, anonymous.
    assert_problem(await client.post("/v1/orders", json=order_body(listing), headers=regulator.auth), 403,
                   "wrong-role")
    pending = await parties.sign_up(["buyer"])
    assert_problem(await client.post("/v1/orders", json=order_body(listing), headers=pending.auth), 403,
                   "account-not-verified")
    assert_problem(await client.post("/v1/orders", json=order_body(listing)), 401)
    # A purpose outside the licence; an unknown purpose.
    assert_problem(await client.post("/v1/orders", json=order_body(listing, purpose="marketing"), headers=b.auth),
                   422, "purpose-not-licensed")
    assert_problem(await client.post("/v1/orders", json=order_body(listing, purpose="spying"), headers=b.auth), 422)
    # An unknown listing or plan.
    assert_problem(await client.post("/v1/orders", json={**order_body(listing), "listing_id": "lst_x"},
                                     headers=b.auth), 404)
    assert_problem(await client.post("/v1/orders", json={**order_body(listing), "plan_id": "pln_x"},
                                     headers=b.auth), 404)
    # Both forms at once, or neither.
    assert_problem(await client.post("/v1/orders", json={**order_body(listing), "signature": "x"},
                                     headers=b.auth), 422)
    assert_problem(await client.post("/v1/orders", json={}, headers=b.auth), 422)
    # A paused listing is not orderable.
    r = await client.patch(f"/v1/listings/{listing['id']}", json={"status": "paused"}, headers=holder.auth)
    assert r.status_code == 200
    assert_problem(await client.post("/v1/orders", json=order_body(listing), headers=b.auth), 409, "not-orderable")
    assert db_count(client, Order, Order.listing_id == listing["id"]) == before == 0
    assert db_count(client, Refusal, Refusal.account_id == b.id) == 0


async def test_self_dealing_is_refused_and_kept(client, parties: Parties, operator: Party) -> None:
    # An account that both provides and buys.
    both = await parties.verified(["provider", "buyer"])
    from tests.listings.support import listable_asset, publish
    from tests.registry_support import add_key

    signer = await add_key(client, both)
    asset = await listable_asset(client, signer, operator)
    own = await publish(client, signer, asset["id"], plans=[FREE])
    r = await client.post("/v1/orders", json=order_body(own), headers=both.auth)
    assert_problem(r, 422, "self-dealing")
    assert db_count(client, Order, Order.listing_id == own["id"]) == 0
    assert db_count(client, Refusal, Refusal.account_id == both.id, Refusal.kind == "self-dealing") == 1


async def test_the_export_gate(client, parties: Parties, operator: Party) -> None:
    _, domestic = await offer(client, parties, operator)
    _, cleared = await offer(client, parties, operator, asset={"export_allowed": True},
                             licence={**LICENCE, "territory": "global"})
    _, cleared_domestic = await offer(client, parties, operator, asset={"export_allowed": True})
    abroad = await buyer(client, parties, jurisdiction="SG")
    for listing in (domestic, cleared_domestic):
        r = await client.post("/v1/orders", json=order_body(listing), headers=abroad.auth)
        assert_problem(r, 403, "export-not-allowed")
    assert db_count(client, Refusal, Refusal.account_id == abroad.id, Refusal.kind == "export-not-allowed") == 2
    assert db_count(client, Order, Order.buyer_id == abroad.id) == 0
    order = await place(client, abroad, cleared)
    assert order["status"] == "active"
    home = await buyer(client, parties)
    assert (await place(client, home, domestic))["status"] == "active"


async def test_private_plans_are_for_their_buyers(client, parties: Parties, operator: Party) -> None:
    chosen, stranger = await buyer(client, parties), await buyer(client, parties)
    private = {**ONE_TIME, "private_to": [chosen.id]}
    _, listing = await offer(client, parties, operator, plans=[FREE, private])
    r = await client.get(f"/v1/listings/{listing['id']}", headers=chosen.auth)
    private_id = next(p["id"] for p in r.json()["plans"] if p.get("private"))
    body = {**order_body(listing), "plan_id": private_id, "payment_method": "bank_transfer"}
    assert_problem(await client.post("/v1/orders", json=body, headers=stranger.auth), 404)
    r = await client.post("/v1/orders", json=body, headers=chosen.auth)
    assert r.status_code == 201 and r.json()["status"] == "awaiting_payment", r.text


async def test_a_private_plans_buyers_do_not_learn_of_each_other(client, parties: Parties, operator: Party,
                                                                 regulator: Party) -> None:
    """Whom a private plan is for is the holder's and staff's to see: a named buyer sees
    ``private: true`` in the listing, and its order and contract record the plan so."""
    chosen, rival = await buyer(client, parties), await buyer(client, parties)
    private = {**ONE_TIME, "private_to": [chosen.id, rival.id]}
    holder, listing = await offer(client, parties, operator, plans=[FREE, private])
    url = f"/v1/listings/{listing['id']}"
    for insider in (holder, operator, regulator):
        shown = (await client.get(url, headers=insider.auth)).json()["plans"]
        assert [p["private_to"] for p in shown if p.get("private")] == [[chosen.id, rival.id]]
    for named in (chosen, rival):
        r = await client.get(url, headers=named.auth)
        assert r.status_code == 200, r.text
        plan = next(p for p in r.json()["plans"] if p["model"] == "one_time")
        assert plan["private"] is True and plan["private_to"] is None, plan
        assert chosen.id not in r.text and rival.id not in r.text
    order = await place(client, chosen, listing, "one_time")
    assert order["terms"]["plan"]["private"] is True and order["terms"]["plan"]["private_to"] is None
    assert (await pay_by_bank(client, operator, order)).status_code == 200
    for who in (chosen, holder, operator):
        r = await client.get(f"/v1/orders/{order['id']}", headers=who.auth)
        assert r.status_code == 200 and rival.id not in r.text, r.text
        assert r.json()["terms"]["plan"]["private"] is True
    r = await client.get(f"/v1/orders/{order['id']}/contract", headers=chosen.auth)
    assert r.status_code == 200 and rival.id not in r.text, r.text
    plan = r.json()["document"]["plan"]
    assert plan["private"] is True and "private_to" not in plan and plan["id"] == order["terms"]["plan"]["id"]
    # The holder may send the plans back as shown (``private`` is read-only).
    plans = (await client.get(url, headers=holder.auth)).json()["plans"]
    r = await client.patch(url, json={"plans": plans}, headers=holder.auth)
    assert r.status_code == 200, r.text
    assert [p.get("private_to") for p in r.json()["plans"]] == [None, [chosen.id, rival.id]]


async def test_approvals_by_the_holder_and_the_regulator(client, parties: Parties, operator: Party,
                                                        regulator: Party) -> None:
    holder, listing = await offer(client, parties, operator, asset={"grade": "important"}, approval_required=True)
    b, other = await buyer(client, parties), await buyer(client, parties)
    order = await place(client, b, listing, "free")
    assert order["status"] == "pending_approval"
    assert order["approvals"] == {"holder": "pending", "regulator": "pending"}
    approval, reg = f"/v1/orders/{order['id']}/approval", f"/v1/orders/{order['id']}/regulator-approval"
    yes = {"decision": "approve", "reason": "fits the purpose"}
    assert_problem(await client.post(approval, json=yes, headers=other.auth), 404)
    assert_problem(await client.post(approval, json=yes, headers=b.auth), 403)
    assert_problem(await client.post(reg, json=yes, headers=holder.auth), 403)
    assert_problem(await client.post(reg, json=yes, headers=operator.auth), 403)
    assert_problem(await client.post(approval, json={"decision": "maybe"}, headers=holder.auth), 422)

    r = await client.post(approval, json=yes, headers=holder.auth)
    assert r.status_code == 200 and r.json()["status"] == "pending_approval", r.text
    assert r.json()["approvals"] == {"holder": "approved", "regulator": "pending"}
    assert_problem(await client.post(approval, json=yes, headers=holder.auth), 409, "already-decided")
    # A regulator's decision is a signed act; the plain body is refused.
    assert_problem(await client.post(reg, json=yes, headers=regulator.auth), 422, "unsigned-act")
    r = await act(client, regulator, "approval", reg, {"order": order["id"], **yes})
    assert r.status_code == 200 and r.json()["status"] == "active", r.text  # free: settled at once

    second = await place(client, b, listing, "free")
    r = await client.post(f"/v1/orders/{second['id']}/approval", json={"decision": "reject", "reason": "no"},
                          headers=holder.auth)
    assert r.json()["status"] == "rejected"
    assert_problem(await act(client, regulator, "approval", None, {"order": second["id"], **yes}), 409)
    types = [e["type"] for e in await order_entries(client, order["id"])]
    assert types == ["trade.placed", "trade.approved", "trade.approved", "trade.settled"]


async def test_cancellation_before_payment_only(client, parties: Parties, operator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    url = f"/v1/orders/{order['id']}/cancellation"
    assert_problem(await client.post(url, headers=holder.auth), 403)
    assert_problem(await client.post(url, headers=operator.auth), 403)
    r = await client.post(url, headers=b.auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert_problem(await pay_by_bank(client, operator, order), 409)
    free = await place(client, b, listing, "free")
    assert_problem(await client.post(f"/v1/orders/{free['id']}/cancellation", headers=b.auth), 409)


async def test_who_sees_an_order(client, parties: Parties, operator: Party, regulator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    b, stranger = await buyer(client, parties), await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    for who in (b, holder, operator, regulator):
        assert (await client.get(f"/v1/orders/{order['id']}", headers=who.auth)).status_code == 200
    assert (await client.get(f"/v1/orders/{order['id']}", headers=holder.auth)).json()["payment"]["client_secret"] \
        is None
    for path in ("", "/contract"):
        assert_problem(await client.get(f"/v1/orders/{order['id']}{path}", headers=stranger.auth), 404)
    assert_problem(await client.get(f"/v1/orders/{order['id']}"), 401)
    assert_problem(await client.get(f"/v1/orders/{order['id']}/contract", headers=b.auth), 409)  # not settled
    mine = (await client.get("/v1/orders", headers=b.auth)).json()["items"]
    assert [o["id"] for o in mine] == [order["id"]]
    theirs = (await client.get("/v1/orders", params={"side": "provider"}, headers=holder.auth)).json()["items"]
    assert [o["id"] for o in theirs] == [order["id"]]
    assert (await client.get("/v1/orders", headers=stranger.auth)).json()["items"] == []
    r = await client.get("/v1/orders", params={"side": "provider", "status": "active"}, headers=holder.auth)
    assert r.json()["items"] == []


async def test_a_signed_order_carries_the_signature_into_the_contract(client, parties: Parties,
                                                                      operator: Party) -> None:
    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    params = {"plan_id": plan_of(listing, "free"), "purpose": "research", "payment_method": "free"}
    r = await client.get(f"/v1/listings/{listing['id']}/order-document", params=params, headers=b.auth)
    assert r.status_code == 200, r.text
    signing_bytes = r.json()["signing_bytes"]
    assert r.json()["document"]["terms_sha256"] == listing["terms_sha256"]
    altered = base64.b64encode(base64.b64decode(signing_bytes).replace(b"research", b"statistic")).decode()
    for bad in ({"signing_bytes": signing_bytes, "key_id": b.key_id, "signature": b.sign(altered)},
                {"signing_bytes": altered, "key_id": b.key_id, "signature": b.sign(altered)}):
        assert_problem(await client.post("/v1/orders", json=bad, headers=b.auth), 422)
    other = await buyer(client, parties)
    assert_problem(await client.post("/v1/orders", headers=other.auth, json={
        "signing_bytes": signing_bytes, "key_id": other.key_id, "signature": other.sign(signing_bytes)}), 422)
    r = await client.post("/v1/orders", headers=b.auth, json={
        "signing_bytes": signing_bytes, "key_id": b.key_id, "signature": b.sign(signing_bytes)})
    assert r.status_code == 201 and r.json()["signed"] is True, r.text
    contract = (await client.get(f"/v1/orders/{r.json()['id']}/contract", headers=b.auth)).json()["document"]
    assert contract["buyer_signature"]["value"] == b.sign(signing_bytes)
    assert contract["buyer_signature"]["key_id"] == b.key_id


async def test_placing_is_idempotent_even_when_racing(client, parties: Parties, operator: Party) -> None:
    from tests.registry_support import concurrently

    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    headers = {**b.auth, "Idempotency-Key": "0b9f4f8e-1b7c-4d7e-9a55-6a1c3f7d2e10"}
    responses = await concurrently(client, *[("POST", "/v1/orders", {"json": order_body(listing, "one_time"),
                                                                      "headers": headers})] * 3)
    assert [r.status_code for r in responses] == [201, 201, 201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert db_count(client, Order, Order.buyer_id == b.id) == 1
    assert db_count(client, TradeDocument, TradeDocument.subject == f"order:{responses[0].json()['id']}") == 1


async def test_the_clock_expires_access_when_its_period_ends(client, parties: Parties, operator: Party,
                                                             settings) -> None:
    from datetime import datetime, timedelta

    from market.core.context import Ctx
    from market.trading import settlement

    _, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "free")
    expires = datetime.fromisoformat(order["expires_at"].replace("Z", "+00:00"))
    assert expires - datetime.fromisoformat(order["settled_at"].replace("Z", "+00:00")) == timedelta(days=365)

    def expire_at(now: datetime) -> int:
        async def run() -> int:
            state = client.app.state.services
            async with state.sessionmaker() as session:
                count = await settlement.expire_due(session, Ctx(None, now, state))
                await session.commit()
                return count

        return client.blocking_portal.call(run)

    expire_at(expires - timedelta(seconds=1))
    assert (await client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()["status"] == "active"
    assert expire_at(expires) >= 1
    assert (await client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()["status"] == "expired"
    types = [e["type"] for e in await order_entries(client, order["id"])]
    assert types == ["trade.placed", "trade.settled", "trade.expired"]
