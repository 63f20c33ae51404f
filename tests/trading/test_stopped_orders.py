"""A regulator's act (freeze, revocation, suspension) or a change of holder stops an
order that was placed before it: settlement re-checks in its own transaction, and
unpaid orders end with a delisted listing (DESIGN §2, invariant 8). No contract is
written, nobody is paid, and a bank transfer that arrives anyway is owed back."""

import json
from typing import Any

import pytest
from sqlalchemy import select

from market.accounts.service import set_suspended
from market.core import money
from market.core.audit import TradeDocument
from market.listings.service import set_frozen as freeze_listing
from market.registry.review import revoke
from market.registry.review import set_frozen as freeze_asset
from tests.conftest import Parties, Party, assert_problem, backend
from tests.registry_support import act, propose, provider
from tests.trading.support import FREE, ONE_TIME, buyer, offer, pay_by_bank, place


def trade_documents(client: Any, order_id: str, type_: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with client.app.state.services.read_sessionmaker() as s:
            rows = (await s.execute(select(TradeDocument).where(TradeDocument.subject == f"order:{order_id}",
                                                                TradeDocument.type == type_))).scalars().all()
            return [json.loads(r.document) for r in rows]

    return client.blocking_portal.call(run)


async def read(client: Any, who: Any, order: dict[str, Any]) -> dict[str, Any]:
    r = await client.get(f"/v1/orders/{order['id']}", headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def assert_ended_and_owed(client: Any, operator: Party, holder: Any, b: Any, order: dict[str, Any],
                                why: str, reference: str = "CMB-2026-0001") -> None:
    """The bank transfer is refused with 409 not-settleable; the order is cancelled with
    the reason (buyer and holder see it); the transfer is owed back (buyer and operator
    see it), as a confidential entry; no contract, no settlement."""
    r = await pay_by_bank(client, operator, order, reference)
    body = assert_problem(r, 409, "not-settleable")
    assert why in body["detail"] and why in body["reason"] and "owed" in body["detail"]
    price = order["price"]
    assert f"{money.human(price['amount'], price['currency'])} is recorded as owed" in body["detail"], body
    for who in (b, holder, operator):
        seen = await read(client, who, order)
        assert seen["status"] == "cancelled" and why in seen["status_reason"]
        assert seen["settled_at"] is None and seen["payment"]["reference"] is None
    returned = (await read(client, operator, order))["payment"]["returns"]
    assert returned == (await read(client, b, order))["payment"]["returns"]
    assert [(x["reference"], x["amount"], x["status"], x["cause"]) for x in returned] == \
        [(f"bank:{reference}", order["price"], "owed", "not-settleable")]
    assert (await read(client, holder, order))["payment"]["returns"] == []
    assert_problem(await client.get(f"/v1/orders/{order['id']}/contract", headers=b.auth), 409)
    assert trade_documents(client, order["id"], "trade.settled") == []
    [document] = trade_documents(client, order["id"], "trade.payment_refunded")
    assert document["payment"] == {"method": "bank_transfer", "reference": f"bank:{reference}"}
    assert document["status"] == "owed" and document["amount"] == order["price"]
    # The operator sends the same record again: the same answer, still one return.
    assert_problem(await pay_by_bank(client, operator, order, reference), 409, "not-settleable")
    assert len((await read(client, operator, order))["payment"]["returns"]) == 1


async def test_a_bank_transfer_after_a_revocation_does_not_settle(client, parties: Parties, operator: Party,
                                                                   regulator: Party, settings) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    assert order["status"] == "awaiting_payment"
    await act(client, settings, regulator, revoke, listing["asset_id"], "unlawful source")
    # The delisting ended the unpaid order at once, with the reason.
    seen = await read(client, b, order)
    assert seen["status"] == "cancelled" and "revoked" in seen["status_reason"]
    await assert_ended_and_owed(client, operator, holder, b, order, "revoked")


@pytest.mark.parametrize("stop", ["asset", "listing", "holder"])
async def test_a_bank_transfer_after_a_freeze_or_suspension_does_not_settle(client, parties: Parties,
                                                                             operator: Party, regulator: Party,
                                                                             settings, stop: str) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    if stop == "asset":
        await act(client, settings, regulator, freeze_asset, listing["asset_id"], True, "under investigation")
        why = "asset is frozen"
    elif stop == "listing":
        await act(client, settings, regulator, freeze_listing, listing["id"], True, "misleading terms")
        why = "listing is frozen"
    else:
        await act(client, settings, regulator, set_suspended, holder.id, True, "fraud inquiry")
        why = "holder's account is suspended"
    assert (await read(client, b, order))["status"] == "awaiting_payment"  # a freeze may be lifted: it waits
    await assert_ended_and_owed(client, operator, holder, b, order, why)


async def test_a_bad_amount_is_refused_before_anything_ends(client, parties: Parties, operator: Party,
                                                             regulator: Party, settings) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    await act(client, settings, regulator, freeze_asset, listing["asset_id"], True, "under investigation")
    r = await client.post(f"/v1/orders/{order['id']}/payment", headers=operator.auth,
                          json={"reference": "CMB-X", "amount": {"amount": 1, "currency": "CNY"}})
    assert_problem(r, 422, "amount-mismatch")
    seen = await read(client, operator, order)
    assert seen["status"] == "awaiting_payment" and seen["payment"]["returns"] == []


async def test_an_approval_after_a_freeze_settles_nothing(client, parties: Parties, operator: Party,
                                                           regulator: Party, settings) -> None:
    """A free order waiting for its holder's approval is not settled by that approval
    while the asset is frozen: the approval is refused and changes nothing."""
    holder, listing = await offer(client, parties, operator, plans=[FREE], approval_required=True)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "free")
    assert order["status"] == "pending_approval"
    await act(client, settings, regulator, freeze_asset, listing["asset_id"], True, "under investigation")
    r = await client.post(f"/v1/orders/{order['id']}/approval", json={"decision": "approve", "reason": ""},
                          headers=holder.auth)
    assert "frozen" in assert_problem(r, 409, "not-orderable")["detail"]
    seen = await read(client, b, order)
    assert seen["status"] == "pending_approval" and seen["approvals"]["holder"] == "pending"
    assert trade_documents(client, order["id"], "trade.settled") == []
    # Lifted: the approval goes through and the order settles.
    await act(client, settings, regulator, freeze_asset, listing["asset_id"], False, "cleared")
    r = await client.post(f"/v1/orders/{order['id']}/approval", json={"decision": "approve", "reason": ""},
                          headers=holder.auth)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text


async def test_a_transfer_ends_the_orders_of_the_old_holder(client, parties: Parties, operator: Party) -> None:
    """After the asset changes hands, the old holder can neither approve an order placed
    with it nor be paid for one: the delisting ends every unpaid order of the listing."""
    holder, listing = await offer(client, parties, operator, plans=[ONE_TIME, FREE], approval_required=True)
    b = await buyer(client, parties)
    waiting = await place(client, b, listing, "one_time")
    free = await place(client, b, listing, "free")
    r = await client.post(f"/v1/orders/{waiting['id']}/approval", json={"decision": "approve", "reason": ""},
                          headers=holder.auth)
    assert r.status_code == 200 and r.json()["status"] == "awaiting_payment", r.text
    pending = await place(client, b, listing, "one_time")
    receiver = await provider(client, parties)
    transfer, signing_bytes = await propose(client, holder, listing["asset_id"], receiver.id)
    r = await client.post(f"/v1/transfers/{transfer['id']}/acceptance", headers=receiver.auth,
                          json={"key_id": receiver.key_id, "signature": receiver.sign(signing_bytes)})
    assert r.status_code == 200, r.text
    for order in (waiting, free, pending):
        seen = await read(client, b, order)
        assert seen["status"] == "cancelled" and "changed hands" in seen["status_reason"], seen
        assert "changed hands" in (await read(client, holder, order))["status_reason"]
        [cancelled] = trade_documents(client, order["id"], "trade.cancelled")
        assert cancelled["by"] == "market" and cancelled["cause"] == "listing-delisted"
    for order in (free, pending):
        r = await client.post(f"/v1/orders/{order['id']}/approval", json={"decision": "approve", "reason": ""},
                              headers=holder.auth)
        assert "changed hands" in assert_problem(r, 403, "not-holder")["detail"]
    await assert_ended_and_owed(client, operator, holder, b, waiting, "changed hands")
    period = waiting["created_at"][:7]
    r = await client.get("/v1/providers/me/statement", params={"period": period}, headers=holder.auth)
    statement = r.json()
    assert r.status_code == 200 and statement["orders"] == [] and statement["totals"] == [], r.text


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite serialises writers: there is no lock to wait for")
async def test_a_payment_waits_for_a_freeze_under_way(client, parties: Parties, operator: Party, regulator: Party,
                                                      settings) -> None:
    """Settlement takes the share locks ordering takes: a bank payment recorded while a
    freeze is being written waits for it, then sees the freeze and settles nothing."""
    import asyncio

    import httpx

    from market.accounts.models import Account
    from market.core.context import Ctx
    from market.core.types import utcnow
    from market.web.auth import Caller

    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    state = client.app.state.services

    async def race() -> tuple[bool, Any]:
        async with state.sessionmaker() as session:
            account = await session.get(Account, regulator.id)
            await freeze_asset(session, Ctx(Caller(account, "tok_test"), utcnow(), state), listing["asset_id"],
                               True, "under investigation")
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
                paying = asyncio.ensure_future(c.post(f"/v1/orders/{order['id']}/payment", headers=operator.auth,
                                                      json={"reference": "CMB-RACE", "amount": order["price"]}))
                await asyncio.sleep(1.0)
                waited = not paying.done()
                await session.commit()  # the freeze lands; the payment goes on
                return waited, await paying

    waited, response = client.blocking_portal.call(race)
    assert waited, "the payment did not wait for the freeze under way"
    assert "frozen" in assert_problem(response, 409, "not-settleable")["detail"]
    assert (await read(client, b, order))["status"] == "cancelled"
