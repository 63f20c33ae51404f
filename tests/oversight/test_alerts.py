"""Alert rules (docs/alerts.md): for each rule, data that triggers it and data that
nearly does; once per subject and window; closure by a regulator only."""

import json
import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from market.accounts.models import Account
from market.oversight.alerts import evaluate_once
from market.trading.models import Order
from tests.conftest import Parties, Party, assert_problem, random_uscc
from tests.listings.support import listable_asset, publish
from tests.registry_support import add_key, ledger_items, own_app
from tests.regulator_acts import act, signed_act
from tests.trading.support import FREE, buyer, offer, pay_by_bank, place


def evaluate(client: Any) -> list[str]:
    return client.blocking_portal.call(evaluate_once, client.app.state.services)


async def all_alerts(client: Any, who: Party, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/oversight/alerts", params=query, headers=who.auth)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def alerts_about(client: Any, who: Party, rule: str, *ids: str) -> list[dict[str, Any]]:
    """Alerts of ``rule`` whose subjects include every id given."""
    return [a for a in await all_alerts(client, who, rule=rule) if set(ids) <= set(a["subjects"])]


def set_settled_at(client: Any, order_id: str, delta: timedelta) -> None:
    state = client.app.state.services

    async def run() -> None:
        async with state.sessionmaker() as session:
            order = await session.get_one(Order, order_id)
            await session.execute(update(Order).where(Order.id == order_id)  # type: ignore[arg-type]
                                  .values(settled_at=order.settled_at + delta))
            await session.commit()

    client.blocking_portal.call(run)


async def trader(client: Any, parties: Parties, operator: Party, **extra: Any) -> tuple[Any, dict[str, Any]]:
    """A party that both sells (a listing with a free plan) and buys."""
    party = await add_key(client, await parties.verified(["buyer", "provider"], **extra))
    asset = await listable_asset(client, party, operator)
    listing = await publish(client, party, asset["id"], plans=[FREE])
    return party, listing


controller_supported = pytest.mark.skipif(not hasattr(Account, "controller_uscc"),
                                          reason="accounts do not declare controller_uscc yet")


@controller_supported
async def test_self_dealing_between_related_parties(client: Any, parties: Parties, operator: Party,
                                                    regulator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    uscc = holder.party.body["uscc"]
    controlled = await buyer(client, parties, controller_uscc=uscc)  # the provider controls the buyer
    unrelated = await buyer(client, parties, controller_uscc=random_uscc())
    related_order = await place(client, controlled, listing)
    unrelated_order = await place(client, unrelated, listing)
    # Both declare the same controller.
    parent = random_uscc()
    seller, own = await trader(client, parties, operator, controller_uscc=parent)
    sibling = await buyer(client, parties, controller_uscc=parent)
    sibling_order = await place(client, sibling, own)

    evaluate(client)
    found = await alerts_about(client, regulator, "self_dealing", controlled.id, holder.id)
    assert len(found) == 1
    assert found[0]["evidence"]["relation"] == "provider_controls_buyer"
    assert related_order["id"] in found[0]["subjects"]
    assert found[0]["status"] == "open" and found[0]["opened_at"]
    same = await alerts_about(client, regulator, "self_dealing", sibling.id, seller.id)
    assert len(same) == 1 and same[0]["evidence"]["relation"] == "same_controller"
    assert sibling_order["id"] in same[0]["subjects"]
    assert await alerts_about(client, regulator, "self_dealing", unrelated.id) == []
    assert unrelated_order["id"] not in str(await all_alerts(client, regulator, rule="self_dealing"))

    # Another related trade in the same window joins the alert; re-running adds nothing.
    await place(client, controlled, listing)
    evaluate(client)
    evaluate(client)
    assert [a["id"] for a in await alerts_about(client, regulator, "self_dealing", controlled.id)] == \
        [found[0]["id"]]


async def test_wash_trade_within_the_window(client: Any, parties: Parties, operator: Party,
                                            regulator: Party) -> None:
    a, a_listing = await trader(client, parties, operator)
    b, b_listing = await trader(client, parties, operator)
    await place(client, a, b_listing)
    await place(client, b, a_listing)
    # Just outside the window (30 days): C buys from D, then D from C 30 days and a minute later.
    c, c_listing = await trader(client, parties, operator)
    d, d_listing = await trader(client, parties, operator)
    early = await place(client, c, d_listing)
    set_settled_at(client, early["id"], -timedelta(days=30, minutes=1))
    await place(client, d, c_listing)
    # One way only: E buys from F twice.
    e, _ = await trader(client, parties, operator)
    f, f_listing = await trader(client, parties, operator)
    await place(client, e, f_listing)
    await place(client, e, f_listing)

    evaluate(client)
    found = await alerts_about(client, regulator, "wash_trade", a.id, b.id)
    assert len(found) == 1
    assert {found[0]["evidence"]["first"]["buyer"], found[0]["evidence"]["second"]["buyer"]} == {a.id, b.id}
    assert await alerts_about(client, regulator, "wash_trade", c.id, d.id) == []
    assert await alerts_about(client, regulator, "wash_trade", e.id, f.id) == []

    # A third trade of the pair within the window: the same alert; evaluating twice adds nothing.
    await place(client, a, b_listing)
    evaluate(client)
    evaluate(client)
    assert [x["id"] for x in await alerts_about(client, regulator, "wash_trade", a.id, b.id)] == [found[0]["id"]]


async def test_price_outlier_beyond_the_factor(databases: Any, tmp_path: Any) -> None:
    # A market of its own: the category's median must come from this test's trades alone.
    async with own_app(databases, tmp_path) as market:
        await _price_outlier(market.client, market.parties, market.operator, await market.parties.regulator())


async def _price_outlier(client: Any, parties: Parties, operator: Party, regulator: Party) -> None:
    category = "agriculture"
    prices = [1000, 5000, 5001, 200, 199]
    plans = [{"model": "one_time", "price": {"amount": p, "currency": "CNY"}} for p in prices]
    _, listing = await offer(client, parties, operator, plans=plans, asset={"category": category})
    plan_of = {p["price"]["amount"]: p["id"] for p in listing["plans"]}
    who = await buyer(client, parties)

    async def buy(price: int) -> str:
        r = await client.post("/v1/orders", headers=who.auth, json={
            "listing_id": listing["id"], "plan_id": plan_of[price], "purpose": "research",
            "payment_method": "bank_transfer"})
        assert r.status_code == 201, r.text
        assert (await pay_by_bank(client, operator, r.json(), reference=f"REF-{secrets.token_hex(4)}")).status_code \
            == 200
        return r.json()["id"]

    first = [await buy(1000) for _ in range(3)]  # the median is 1000
    at_factor = await buy(5000)  # exactly 5 x the median: inside
    above = await buy(5001)
    at_fifth = await buy(200)  # exactly 1/5 of the median: inside
    below = await buy(199)

    evaluate(client)
    flagged = {a["evidence"]["order"]: a for a in await all_alerts(client, regulator, rule="price_outlier")}
    assert above in flagged and flagged[above]["evidence"]["direction"] == "above"
    assert flagged[above]["evidence"]["median"] == 1000 and flagged[above]["evidence"]["factor"] == 5
    assert below in flagged and flagged[below]["evidence"]["direction"] == "below"
    for order_id in [*first, at_factor, at_fifth]:
        assert order_id not in flagged
    evaluate(client)
    assert len([a for a in await all_alerts(client, regulator, rule="price_outlier")
                if a["evidence"]["category"] == category]) == 2


async def test_order_burst_more_than_n_orders(client: Any, parties: Parties, operator: Party,
                                              regulator: Party, settings: Any) -> None:
    n = settings.order_burst_count
    _, listing = await offer(client, parties, operator)
    eager = await buyer(client, parties)
    for _ in range(n):
        await place(client, eager, listing)
    evaluate(client)
    assert await alerts_about(client, regulator, "order_burst", eager.id) == []  # N orders: not more than N
    last = await place(client, eager, listing)
    evaluate(client)
    evaluate(client)
    found = await alerts_about(client, regulator, "order_burst", eager.id)
    assert len(found) == 1
    assert found[0]["evidence"]["more_than"] == n and last["id"] in found[0]["evidence"]["orders"]


async def test_refused_export_attempt(client: Any, parties: Parties, operator: Party, regulator: Party) -> None:
    _, listing = await offer(client, parties, operator)
    abroad = await buyer(client, parties, jurisdiction="US")
    body = {"listing_id": listing["id"], "plan_id": listing["plans"][1]["id"], "purpose": "research",
            "payment_method": "free"}
    assert_problem(await client.post("/v1/orders", json=body, headers=abroad.auth), 403, "export-not-allowed")
    assert_problem(await client.post("/v1/orders", json=body, headers=abroad.auth), 403, "export-not-allowed")
    # Ordering one's own listing is refused too, but is no export or core-data attempt.
    own, own_listing = await trader(client, parties, operator)
    body = {"listing_id": own_listing["id"], "plan_id": own_listing["plans"][0]["id"], "purpose": "research",
            "payment_method": "free"}
    assert_problem(await client.post("/v1/orders", json=body, headers=own.auth), 422, "self-dealing")

    evaluate(client)
    evaluate(client)
    found = await alerts_about(client, regulator, "refused_attempt", abroad.id)
    assert len(found) == 1  # two attempts the same day: one alert naming both
    assert found[0]["evidence"]["kind"] == "export-not-allowed" and len(found[0]["evidence"]["refusals"]) == 2
    assert await alerts_about(client, regulator, "refused_attempt", own.id) == []


async def test_identifiable_personal_information_sold(client: Any, parties: Parties, operator: Party,
                                                      regulator: Party) -> None:
    _, listing = await offer(client, parties, operator, asset={"personal_info": "identifiable",
                                                                "legal_basis": "个人信息主体的单独同意"})
    _, plain = await offer(client, parties, operator)
    who = await buyer(client, parties)
    order = await place(client, who, listing)
    other = await place(client, who, plain)
    evaluate(client)
    evaluate(client)
    found = await alerts_about(client, regulator, "identifiable_pi_sale", order["id"])
    assert len(found) == 1 and found[0]["evidence"]["personal_info"] == "identifiable"
    assert await alerts_about(client, regulator, "identifiable_pi_sale", other["id"]) == []


async def test_alert_views_and_closure(client: Any, parties: Parties, operator: Party, regulator: Party) -> None:
    _, listing = await offer(client, parties, operator, asset={"personal_info": "identifiable",
                                                                "legal_basis": "个人信息主体的单独同意"})
    who = await buyer(client, parties)
    order = await place(client, who, listing)
    evaluate(client)
    [alert] = await alerts_about(client, regulator, "identifiable_pi_sale", order["id"])
    assert {"id", "rule", "subjects", "evidence", "opened_at", "status"} <= alert.keys()

    # Operators read; parties neither read nor close; operators do not close.
    assert alert["id"] in [a["id"] for a in await all_alerts(client, operator, status="open")]
    assert_problem(await client.get("/v1/oversight/alerts", headers=who.auth), 403, "wrong-role")
    assert_problem(await client.get("/v1/oversight/alerts"), 401)
    path = f"/v1/oversight/alerts/{alert['id']}/closure"
    for party in (operator, who):
        assert_problem(await client.post(path, json={"reason": "seen"}, headers=party.auth), 403, "wrong-role")
    assert_problem(await client.post(path, json={"reason": "seen"}), 401)
    assert_problem(await act(client, regulator, "alert_closure", path, {"alert": alert["id"], "reason": ""}), 422)
    assert_problem(await client.post(path, json={"reason": "seen"}, headers=regulator.auth), 422, "unsigned-act")
    assert_problem(await client.post(path, json={}, headers=regulator.auth), 422)
    assert_problem(await act(client, regulator, "alert_closure", None, {"alert": "alr_nosuch", "reason": "x"}), 404)

    reason = "consent records checked with the provider"
    signed = await signed_act(client, regulator, "alert_closure", {"alert": alert["id"], "reason": reason})
    r = await client.post(path, json=signed, headers=regulator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["closed_by"] == regulator.id
    assert_problem(await client.post(path, json=signed, headers=regulator.auth), 409, "act-used")
    assert_problem(await act(client, regulator, "alert_closure", path, {"alert": alert["id"], "reason": reason}), 409)
    assert alert["id"] in [a["id"] for a in await all_alerts(client, regulator, status="closed")]
    assert alert["id"] not in [a["id"] for a in await all_alerts(client, regulator, status="open")]

    # The closure is on the ledger as the signed act: its salted document's hash (which
    # holds the reason), the key id and the signature; never the reason itself.
    [item] = await ledger_items(client, alert["id"], kind="alert")
    entry = item["entry"]
    assert entry["type"] == "oversight.alert_closed" and entry["actor"] == regulator.id
    import base64
    import hashlib

    assert entry["data"]["act"] == {"document_sha256": hashlib.sha256(base64.b64decode(signed["signing_bytes"]))
                                    .hexdigest(), "key_id": regulator.key_id, "signature": signed["signature"]}
    assert reason not in str(entry)
    # Evaluating again never reopens it.
    evaluate(client)
    [again] = await alerts_about(client, regulator, "identifiable_pi_sale", order["id"])
    assert again["status"] == "closed"


async def test_unknown_rule_filter_is_refused(client: Any, regulator: Party) -> None:
    r = await client.get("/v1/oversight/alerts", params={"rule": "nosuch"}, headers=regulator.auth)
    assert r.status_code in (400, 422), r.text



async def test_a_burst_is_evaluated_in_short_transactions(databases: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """Many new events are worked through a batch per transaction, to the last one. A
    market of its own with no clock, whose rounds would otherwise take the burst first."""
    from sqlalchemy import func, select

    from market.core.audit import TradeDocument
    from market.oversight import alerts
    from market.oversight.models import EvaluatorMark

    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        evaluate(client)
        _, listing = await offer(client, app.parties, app.operator, plans=[FREE])
        for _ in range(4):
            await place(client, await buyer(client, app.parties), listing)  # two documents each
        monkeypatch.setattr(alerts, "BATCH", 3)
        commits: list[int] = []
        real = alerts.evaluate

        async def counting(*args: Any) -> Any:
            commits.append(1)
            return await real(*args)

        monkeypatch.setattr(alerts, "evaluate", counting)
        evaluate(client)

        async def positions() -> tuple[int, int]:
            async with client.app.state.services.read_sessionmaker() as s:
                mark = (await s.execute(select(EvaluatorMark.position).where(
                    EvaluatorMark.source == "trade_documents"))).scalar_one()
                last = (await s.execute(select(func.max(TradeDocument.id)))).scalar_one()
                return mark, last

        mark, last = client.blocking_portal.call(positions)
        assert mark == last and len(commits) >= 3


async def test_a_document_committed_after_a_later_one_is_evaluated_once_and_only_it(
        databases: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """An id read past before its transaction committed (PostgreSQL takes ids at insert)
    is a gap of the mark: the next rounds look for it, and only for it, until it comes.
    A market of its own, with no clock, as the documents are written with chosen ids."""
    from market.core.audit import TradeDocument
    from market.oversight import alerts
    from market.oversight.models import EvaluatorMark

    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        evaluate(client)
        services = client.app.state.services
        seen: list[str] = []

        async def recorded(session: Any, ctx: Any, doc_type: str, subject: str) -> list[Any]:
            seen.append(subject)
            return []

        monkeypatch.setattr(alerts, "_evaluate_document", recorded)

        async def mark() -> tuple[int, set[str]]:
            async with services.read_sessionmaker() as session:
                row = await session.get_one(EvaluatorMark, "trade_documents")
                return row.position, set(json.loads(row.gaps))

        async def write(doc_id: int, subject: str) -> None:
            async with services.sessionmaker() as session:
                session.add(TradeDocument(id=doc_id, subject=subject, type="trade.placed", document="{}",
                                          document_sha256=secrets.token_hex(32)))
                await session.commit()

        position, before = client.blocking_portal.call(mark)
        client.blocking_portal.call(write, position + 3, "order:later")
        evaluate(client)
        assert seen == ["order:later"]
        position_now, gaps = client.blocking_portal.call(mark)
        assert position_now == position + 3 and gaps == before | {str(position + 1), str(position + 2)}
        client.blocking_portal.call(write, position + 1, "order:late")
        evaluate(client)
        evaluate(client)
        assert seen == ["order:later", "order:late"]  # the late one once; the later one not again
        assert client.blocking_portal.call(mark)[1] == before | {str(position + 2)}


def test_gaps_are_forgotten_after_the_reread_window() -> None:
    from market.oversight import alerts
    from market.oversight.models import EvaluatorMark

    now = 1_000_000.0
    window = alerts.REREAD.total_seconds()
    gaps = alerts._Gaps(EvaluatorMark(source="s", position=9, gaps=json.dumps(
        {"3": now - window - 1, "5": now - window + 1})), now)
    assert gaps.ids == {5: now - window + 1}
    gaps.missed(9, [11, 14])
    assert set(gaps.ids) == {5, 10, 12, 13}
    gaps.seen([12, 99])
    assert set(gaps.ids) == {5, 10, 13}
    gaps.missed(14, list(range(20, 20 + 2 * alerts.MAX_GAPS, 2)))
    assert len(gaps.ids) == alerts.MAX_GAPS


async def test_a_burst_reads_each_order_account_asset_and_alert_once(databases: Any, tmp_path: Any) -> None:
    """One buyer's burst, evaluated in one round: every order is linked to the one alert,
    and the evaluator reads the batch's orders, accounts and assets together (no read of
    one row by its id per document) and the alert once, not once per finding; the links
    are one insert. The rules read in a read transaction: the write transaction (on
    SQLite, the write lock) reads no document, order, account or asset."""
    import re

    from sqlalchemy import event, select

    from market.core.db import READ_ONLY
    from market.oversight.models import Alert, AlertedOrder

    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client, services = app.client, app.client.app.state.services
        evaluate(client)
        n = services.settings.order_burst_count
        _, listing = await offer(client, app.parties, app.operator, plans=[FREE])
        eager = await buyer(client, app.parties)
        placed = [(await place(client, eager, listing))["id"] for _ in range(n + 3)]
        statements: list[str] = []
        written: list[str] = []

        def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(" ".join(statement.split()))
            if not conn.get_execution_options().get(READ_ONLY):
                written.append(statements[-1])

        # PostgreSQL's reader is the writer with options: the writer's listeners hear it too.
        writer, reader = services.engine.sync_engine, services.read_engine.sync_engine
        engines = [writer] if reader.pool is writer.pool else [writer, reader]
        for engine in engines:
            event.listen(engine, "before_cursor_execute", record)
        try:
            evaluate(client)
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)

        async def linked() -> tuple[list[str], set[str]]:
            async with services.read_sessionmaker() as s:
                found = (await s.execute(select(Alert.id).where(Alert.rule == "order_burst",  # type: ignore[arg-type]
                                                                Alert.subject_key == eager.id))).scalars().all()
                orders = (await s.execute(select(AlertedOrder.order_id).where(
                    AlertedOrder.alert_id.in_(found)))).scalars().all()  # type: ignore[attr-defined]
                return list(found), set(orders)

        alert_ids, orders = client.blocking_portal.call(linked)
        assert len(alert_ids) == 1 and orders == set(placed)
        one_by_id = [s for s in statements
                     if re.search(r"FROM (orders|accounts|assets) WHERE \w+\.id = ", s)]
        assert one_by_id == [], one_by_id
        assert len([s for s in statements if re.search(r"SELECT .* FROM alerts WHERE", s)]) <= 1
        assert any(re.search(r"FROM orders WHERE", s) for s in statements)  # the rules' reads were heard
        rules_read = [s for s in written if re.search(r"FROM (trade_documents|orders|accounts|assets)\b", s)]
        assert rules_read == [], rules_read
        # Every finding's orders linked to the alert in one insert for the batch.
        assert len([s for s in written if s.startswith("INSERT INTO alerted_orders")]) == 1
