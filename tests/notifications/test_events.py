"""Every event reaches its recipients' inboxes and webhooks, and nobody else's
(docs/API.md "Notifications and webhooks"): buyers, holders, operators, regulators."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from market.core import db
from market.core.outbox import EVENT_TYPES
from market.trading.models import Order
from tests.conftest import assert_problem
from tests.notifications.support import Receiver, events_of, eventually, hook, inbox, own_app, quiet, wait_event
from tests.registry_support import provider, registered_asset, submitted_asset
from tests.regulator_acts import act
from tests.trading.support import FREE, ONE_TIME, buyer, offer, pay_by_bank, place

MARKET = Path(__file__).resolve().parents[2] / "market"


def test_every_event_type_has_an_emission_site() -> None:
    """Each event the market sends (but the webhook-only ``ping`` and the sender's own
    ``webhook.disabled``) is named in a domain module, outside the outbox itself."""
    sources = {p: p.read_text() for p in MARKET.rglob("*.py") if p.name != "outbox.py"}
    for event in sorted(EVENT_TYPES - {"ping", "webhook.disabled"}):
        sites = [p for p, text in sources.items() if re.search(rf'"{re.escape(event)}"', text)
                 and ("notices." in text or "outbox." in text or "notify(" in text)]
        assert sites, f"{event} is emitted nowhere"


async def webhook_events(receiver: Receiver, path: str, subject: str | None = None) -> list[str]:
    return [r.json["type"] for r in receiver.at(path) if subject is None or r.json["data"]["subject"] == subject]


async def test_registry_events(fast: Any, receiver: Receiver) -> None:
    client, parties, operator = fast.client, fast.parties, fast.operator
    watcher = await parties.staff("operator")
    holder = await provider(client, parties)
    stranger = await parties.verified(["buyer", "provider"])
    await hook(client, holder, receiver.url("/reg-holder"), ["asset.*"])
    await hook(client, watcher, receiver.url("/reg-ops"), ["asset.review_requested"])
    asset = await registered_asset(client, holder, operator)
    told = await wait_event(client, holder, "asset.registered", asset["id"])
    assert told["data"]["registration_number"] == asset["registration_number"]
    review = await wait_event(client, watcher, "asset.review_requested", asset["id"])
    assert review["data"]["provider"] == holder.id
    rejected = await submitted_asset(client, holder)
    r = await client.post(f"/v1/assets/{rejected['id']}/review", json={"decision": "reject", "reason": "blurry scan"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    note = await wait_event(client, holder, "asset.rejected", rejected["id"])
    assert note["data"]["reason"] == "blurry scan"
    await eventually(lambda: webhook_events(receiver, "/reg-holder", rejected["id"]))
    await quiet(client)
    assert await webhook_events(receiver, "/reg-holder", asset["id"]) == ["asset.registered"]
    assert await webhook_events(receiver, "/reg-holder", rejected["id"]) == ["asset.rejected"]
    assert sorted(await webhook_events(receiver, "/reg-ops")) == ["asset.review_requested"] * 2
    # the holder is not told what operators are, nor others anything
    assert "asset.review_requested" not in await events_of(client, holder)
    assert await events_of(client, stranger) == []
    assert not {"asset.registered", "asset.rejected"} & set(await events_of(client, watcher))


async def test_order_events_bank_transfer(fast: Any, receiver: Receiver) -> None:
    client, parties, operator = fast.client, fast.parties, fast.operator
    watcher = await parties.staff("operator")
    holder, listing = await offer(client, parties, operator, plans=[ONE_TIME, FREE], approval_required=True)
    who = await buyer(client, parties)
    await hook(client, holder, receiver.url("/ord-holder"), ["order.*", "dispute.*", "payout.recorded"])
    await hook(client, who, receiver.url("/ord-buyer"), ["order.awaiting_payment"])
    order = await place(client, who, listing, model="one_time")
    assert order["status"] == "pending_approval" and order["payment"]["instructions"] is None
    pending = await wait_event(client, holder, "order.pending_approval", order["id"])
    assert pending["data"]["buyer"] == who.id and pending["data"]["purpose"] == "research"
    r = await client.post(f"/v1/orders/{order['id']}/approval", json={"decision": "approve", "reason": "fine"},
                          headers=holder.auth)
    assert r.status_code == 200, r.text
    awaiting = await wait_event(client, who, "order.awaiting_payment", order["id"])
    mine = (await client.get(f"/v1/orders/{order['id']}", headers=who.auth)).json()
    instructions = mine["payment"]["instructions"]
    assert instructions == awaiting["data"]["instructions"]
    assert instructions["account"] == parties.settings.bank_account and instructions["reference"]
    assert order["id"][4:].upper() in instructions["reference"]
    expected = await wait_event(client, watcher, "order.bank_payment_expected", order["id"])
    assert expected["data"]["reference"] == instructions["reference"]
    assert expected["data"]["amount"] == order["price"]
    r = await pay_by_bank(client, operator, order, reference=instructions["reference"])
    assert r.status_code == 200, r.text
    assert r.json()["payment"]["instructions"] is None  # paid: no more instructions
    active_buyer = await wait_event(client, who, "order.active", order["id"])
    active_holder = await wait_event(client, holder, "order.active", order["id"])
    assert "provider_share" not in active_buyer["data"] and active_holder["data"]["provider_share"]
    # dispute, its resolution, a payout
    r = await client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": "rows missing"}, headers=who.auth)
    assert r.status_code == 201, r.text
    dispute = r.json()
    opened = await wait_event(client, holder, "dispute.opened", dispute["id"])
    assert opened["data"]["order"] == order["id"]
    await wait_event(client, watcher, "dispute.opened", dispute["id"])
    r = await client.post(f"/v1/disputes/{dispute['id']}/resolution", json={"decision": "reject", "reason": "complete"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    resolved = await wait_event(client, who, "dispute.resolved", dispute["id"])
    assert resolved["data"]["status"] == "rejected" and resolved["data"]["reason"] == "complete"
    period = datetime.now(UTC).strftime("%Y-%m")
    r = await client.post("/v1/payouts", headers=operator.auth, json={
        "provider": holder.id, "period": period, "amount": {"amount": 1000, "currency": "CNY"}, "reference": "P-1"})
    assert r.status_code == 201, r.text
    payout = await wait_event(client, holder, "payout.recorded", r.json()["id"])
    assert payout["data"]["amount"] == {"amount": 1000, "currency": "CNY"}
    # nobody hears what is not theirs
    await quiet(client)
    buyer_events = await events_of(client, who)
    assert set(buyer_events) == {"order.awaiting_payment", "order.active", "dispute.resolved"}
    holder_events = set(await events_of(client, holder))
    assert {"order.pending_approval", "order.active", "dispute.opened", "payout.recorded"} <= holder_events
    assert not {"order.awaiting_payment", "dispute.resolved", "order.bank_payment_expected"} & holder_events
    assert not {"order.active", "order.pending_approval", "order.awaiting_payment"} & \
        set(await events_of(client, watcher, order["id"]))
    assert await webhook_events(receiver, "/ord-buyer", order["id"]) == ["order.awaiting_payment"]
    assert await webhook_events(receiver, "/ord-holder", order["id"]) == ["order.pending_approval", "order.active"]
    assert await webhook_events(receiver, "/ord-holder", dispute["id"]) == ["dispute.opened"]


async def test_rejected_and_expired_orders(fast: Any) -> None:
    client, parties, operator = fast.client, fast.parties, fast.operator
    holder, listing = await offer(client, parties, operator, plans=[ONE_TIME, FREE], approval_required=True)
    who = await buyer(client, parties)
    order = await place(client, who, listing)
    r = await client.post(f"/v1/orders/{order['id']}/approval", json={"decision": "reject", "reason": "not you"},
                          headers=holder.auth)
    assert r.status_code == 200, r.text
    rejected = await wait_event(client, who, "order.rejected", order["id"])
    assert rejected["data"]["reason"] == "not you"
    # a free order with no approval is active at once, then expires with the clock
    _, open_listing = await offer(client, parties, operator, plans=[FREE])
    free = await place(client, who, open_listing)
    assert free["status"] == "active"
    await wait_event(client, who, "order.active", free["id"])
    assert "order.awaiting_payment" not in await events_of(client, who, free["id"])
    engine = db.make_engine(parties.settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            await session.execute(update(Order).where(Order.id == free["id"])  # type: ignore[arg-type]
                                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
            await session.commit()
    finally:
        await engine.dispose()
    await wait_event(client, who, "order.expired", free["id"])
    assert "order.expired" not in await events_of(client, holder)


async def _all_dispatched(client: Any) -> bool:
    from sqlalchemy import text

    async def read() -> int:
        async with client.app.state.services.read_sessionmaker() as s:
            return int((await s.execute(text("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL"))).scalar_one())

    return int(client.blocking_portal.call(read)) == 0


async def test_regulator_events_and_the_reason_reaches_only_the_holder(fast: Any, receiver: Receiver) -> None:
    client, parties, operator = fast.client, fast.parties, fast.operator
    regulator = await parties.regulator()
    watcher = await parties.staff("operator")
    holder, listing = await offer(client, parties, operator, asset={"grade": "important"})
    who = await buyer(client, parties)
    # What came before the hooks (the registration, the listing) is told before they exist.
    await eventually(lambda: _all_dispatched(client))
    await hook(client, regulator, receiver.url("/reg"), ["order.regulator_approval_requested", "alert.*"])
    await hook(client, holder, receiver.url("/frozen"), ["asset.*", "listing.*"])
    order = await place(client, who, listing)
    assert order["status"] == "pending_approval"
    asked = await wait_event(client, regulator, "order.regulator_approval_requested", order["id"])
    assert asked["data"]["buyer"] == who.id and asked["data"]["asset"] == listing["asset_id"]
    asset_id = listing["asset_id"]
    secret_reason = "suspected unlawful collection, case 2026-117"
    for action, target in (("freeze_asset", asset_id), ("freeze_listing", listing["id"]),
                           ("unfreeze_asset", asset_id), ("revoke_registration", asset_id)):
        r = await act(client, regulator, "action", "/v1/oversight/actions",
                      {"action": action, "target": target, "reason": secret_reason})
        assert r.status_code == 201, r.text
    for event, subject in (("asset.frozen", asset_id), ("listing.frozen", listing["id"]),
                           ("asset.unfrozen", asset_id), ("asset.revoked", asset_id)):
        note = await wait_event(client, holder, event, subject)
        assert note["data"]["reason"] == secret_reason
    # an export refusal opens an alert for the regulators
    abroad = await buyer(client, parties, jurisdiction="US")
    _, open_listing = await offer(client, parties, operator)
    body = {"listing_id": open_listing["id"], "plan_id": open_listing["plans"][1]["id"], "purpose": "research",
            "payment_method": "free"}
    assert_problem(await client.post("/v1/orders", json=body, headers=abroad.auth), 403, "export-not-allowed")
    alert = await wait_event(client, regulator, "alert.opened", seconds=20)
    assert alert["data"]["rule"] in {"refused_attempt", "order_burst", "self_dealing", "wash_trade", "price_outlier",
                                     "identifiable_pi_sale"}
    await eventually(lambda: webhook_events(receiver, "/frozen", asset_id))
    await quiet(client)
    # the reason went to the holder alone
    for other in (who, regulator, watcher, operator, abroad):
        for n in await inbox(client, other):
            assert secret_reason not in str(n["data"]), (other.id, n)
    sent = [r for r in receiver.requests if secret_reason in r.body.decode()]
    assert sent and {r.path for r in sent} == {"/frozen"}
    # Messages are sent concurrently: a receiver orders them by their timestamp, not arrival.
    assert sorted(await webhook_events(receiver, "/frozen", asset_id)) == ["asset.frozen", "asset.revoked",
                                                                           "asset.unfrozen"]
    assert await webhook_events(receiver, "/frozen", listing["id"]) == ["listing.frozen"]
    assert "order.regulator_approval_requested" not in await events_of(client, watcher)
    assert "alert.opened" not in await events_of(client, watcher)
    assert "order.regulator_approval_requested" in await webhook_events(receiver, "/reg", order["id"])


async def test_objection_tells_the_holder(databases: Any, tmp_path_factory: Any) -> None:
    async with own_app(databases, tmp_path_factory.mktemp("objection"), notice_period="10d",
                       notify_interval=0.05) as app:
        client, parties, operator = app.client, app.parties, app.operator
        holder = await provider(client, parties)
        asset = await submitted_asset(client, holder)
        r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
        assert r.status_code == 200 and r.json()["status"] == "public_notice", r.text
        objector = await parties.verified(["provider"])
        r = await client.post(f"/v1/assets/{asset['id']}/objections", headers=objector.auth,
                              json={"reason": "that is our data", "evidence": "contract 12"})
        assert r.status_code == 201, r.text
        note = await wait_event(client, holder, "asset.objection_filed", asset["id"])
        assert note["data"]["objection"] == r.json()["id"]
        assert "asset.objection_filed" not in await events_of(client, objector)
        assert "asset.registered" not in await events_of(client, holder)  # still in notice
