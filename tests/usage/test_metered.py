"""Metered look-ups over HTTP: rows by key, hidden columns never, the quota and its 429, periods
billed on the ledger, the charge paid and on the provider's statement, overdue charges stop access."""

import asyncio
import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from market.core.clock import FakeClock
from market.usage import counts
from market.wiring.tasks import close_usage_once
from tests.conftest import Parties, Party, assert_problem
from tests.registry_support import own_app
from tests.regulator_acts import act
from tests.statements import counted
from tests.trading.support import buyer
from tests.usage.support import METERED, sandbox_order


def records(client: Any, bought: dict[str, Any], who: Any = None, **params: Any) -> Any:
    return client.get(f"/v1/orders/{bought['order']['id']}/records", params=params,
                      headers=(who or bought["buyer"]).auth)


@pytest.fixture(scope="module")
async def bought(client: Any, parties: Parties, operator: Party) -> dict[str, Any]:
    return await sandbox_order(client, parties, operator, plans=[METERED])


async def test_a_metered_order_is_active_at_once_and_costs_nothing_itself(bought) -> None:
    order = bought["order"]
    assert order["payment"]["provider"] == "postpaid" and order["status"] == "active"
    assert order["price"]["amount"] == 0 and order["terms"]["plan"]["price"]["amount"] == 200
    plan = next(p for p in bought["listing"]["plans"] if p["model"] == "metered")
    assert plan["delivery"] == "api" and plan["quota"] == 25


async def test_look_ups_by_key_never_show_hidden_columns(client, bought) -> None:
    card = bought["rows"][0][4]
    r = await records(client, bought, card=card, limit=3)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["columns"] == ["rider", "district", "day", "fare", "card"]  # not phone
    expected = [list(row[:5]) for row in bought["rows"] if row[4] == card][:3]
    assert [[row[0], row[1], row[2], row[3], row[4]] for row in answer["rows"]] == expected
    assert answer["records_left"] == 25 - len(expected)
    assert all("1380000" not in str(row) for row in answer["rows"])


async def test_bad_look_ups_are_clear_and_count_nothing(client, parties: Parties, bought) -> None:
    usage = (await client.get(f"/v1/orders/{bought['order']['id']}/usage", headers=bought["buyer"].auth)).json()
    for params in ({}, {"district": "福田"}, {"phone": "13800000000"}, {"card": "C0001", "rider": "r01"},
                   {"nosuch": "1"}):
        problem = assert_problem(await records(client, bought, **params), 422, "bad-lookup")
        assert problem["errors"]
    for params in ({"card": "C0001", "limit": 0}, {"card": "C0001", "limit": 5000}):
        assert (await records(client, bought, **params)).status_code in (400, 422)
    stranger = await buyer(client, parties)
    assert (await records(client, bought, stranger, card="C0001")).status_code in (403, 404)
    assert_problem(await client.get(f"/v1/orders/{bought['order']['id']}/records", params={"card": "C0001"}), 401)
    assert_problem(await client.get(f"/v1/orders/{bought['order']['id']}/usage", headers=stranger.auth), 404)
    after = (await client.get(f"/v1/orders/{bought['order']['id']}/usage", headers=bought["buyer"].auth)).json()
    assert after == usage


async def test_only_the_buyer_looks_up_and_only_while_delivery_is_allowed(client, parties: Parties, operator: Party,
                                                                          regulator: Party) -> None:
    """The rules of every delivery, read afresh for each look-up: a freeze or a suspension acts on
    the very next one, and a refused look-up counts nothing."""
    bought = await sandbox_order(client, parties, operator, plans=[METERED])
    card = bought["rows"][0][4]
    stranger = await buyer(client, parties)
    assert_problem(await records(client, bought, stranger, card=card), 404)
    assert_problem(await records(client, bought, bought["holder"], card=card), 403, "not-buyer")
    assert_problem(await records(client, bought, operator, card=card), 403, "not-buyer")
    assert_problem(await client.get("/v1/orders/ord_nosuch/records", params={"card": card},
                                    headers=bought["buyer"].auth), 404)

    async def regulator_does(action: str, target: str) -> None:
        body = {"action": action, "target": target, "reason": "complaint under review"}
        r = await act(client, regulator, "action", "/v1/oversight/actions", body)
        assert r.status_code == 201, r.text

    looked = 0
    for thing, target, kind in (("asset", bought["table"]["asset_id"], "no-access"),
                                ("listing", bought["listing"]["id"], "no-access"),
                                ("account", bought["buyer"].id, "account-suspended")):
        stop, go = ("suspend_account", "reinstate_account") if thing == "account" else (f"freeze_{thing}",
                                                                                       f"unfreeze_{thing}")
        await regulator_does(stop, target)
        assert_problem(await records(client, bought, card=card, limit=1), 403 if thing == "account" else 409, kind)
        await regulator_does(go, target)
        r = await records(client, bought, card=card, limit=1)
        assert r.status_code == 200, r.text
        looked += 1
    [period] = (await client.get(f"/v1/orders/{bought['order']['id']}/usage",
                                 headers=bought["buyer"].auth)).json()["items"]
    assert (period["calls"], period["records"]) == (looked, looked)


async def test_look_ups_at_once_never_pass_the_quota(databases, tmp_path) -> None:
    """Counted together (one transaction for the look-ups that finish at about the same time):
    a group is counted at once when it fits, else each call alone in the order they came, those
    that fit counted and the rest refused; each answer says what is left after it."""
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        bought = await sandbox_order(client, app.parties, app.operator, plans=[METERED])
        order_id = bought["order"]["id"]
        rows_of: dict[str, int] = {}
        for row in bought["rows"]:
            rows_of[row[4]] = rows_of.get(row[4], 0) + 1
        cards = [card for card, n in sorted(rows_of.items()) if n >= 3][:4]
        answers = await asyncio.gather(*(records(client, bought, card=card, limit=3) for card in cards))
        assert [r.status_code for r in answers] == [200] * 4
        assert sorted(r.json()["records_left"] for r in answers) == [13, 16, 19, 22]

        async def usage() -> dict[str, Any]:
            [period] = (await client.get(f"/v1/orders/{order_id}/usage",
                                         headers=bought["buyer"].auth)).json()["items"]
            return period  # type: ignore[no-any-return]

        period = await usage()
        assert (period["calls"], period["records"]) == (4, 12)
        shape = counts.Period(order_id, period["period"], datetime.fromisoformat(period["starts_at"]),
                              datetime.fromisoformat(period["ends_at"]), "CNY", period["reference"], 25)
        engine = client.app.state.services.engine

        async def at_once(*sizes: int) -> list[int | None]:
            calls = [counts.Call(shape, n, {"at": shape.starts_at, "column": "card", "records": n,
                                            "value_sha256": "0" * 64, "result_sha256": "0" * 64}) for n in sizes]
            return list(await asyncio.gather(*(counts.counts_of(engine).count(call) for call in calls)))

        assert client.blocking_portal.call(at_once, *[1] * 12) == list(range(13, 25))  # 12 of 13 left: all fit
        assert client.blocking_portal.call(at_once, 2, 2, 1) == [None, None, 25]  # 1 left: only the last fits
        period = await usage()
        assert (period["calls"], period["records"]) == (4 + 12 + 1, 25)

        answers = await asyncio.gather(*(records(client, bought, card=card, limit=1) for card in cards))
        for r in answers:
            assert_problem(r, 429, "quota-exhausted")
        assert (await usage())["records"] == 25


async def test_the_content_is_never_downloaded(client, bought) -> None:
    assert_problem(await client.get(f"/v1/orders/{bought['order']['id']}/content", headers=bought["buyer"].auth),
                   409, "wrong-delivery")


async def test_a_sandbox_query_on_an_api_order_is_refused(client, bought) -> None:
    assert_problem(await client.post(f"/v1/orders/{bought['order']['id']}/queries",
                                     json={"sql": "SELECT COUNT(*) FROM data"}, headers=bought["buyer"].auth),
                   409, "wrong-delivery")


async def test_api_plans_need_a_table_with_a_key(client, parties: Parties, operator: Party) -> None:
    from tests.listings.support import listable_asset, listing_body
    from tests.registry_support import provider

    holder = await provider(client, parties)
    asset = await listable_asset(client, holder, operator)
    for plans in ([METERED], [{"model": "one_time", "price": {"amount": 100, "currency": "CNY"},
                                "delivery": "sandbox"}]):
        assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"], plans=plans),
                                         headers=holder.auth), 422, "table-required")
    for bad in ({**METERED, "quota": None}, {**METERED, "delivery": "download"}, {**METERED, "period_days": None},
                {"model": "one_time", "price": {"amount": 100, "currency": "CNY"}, "quota": 5},
                {"model": "one_time", "price": {"amount": 100, "currency": "CNY"}, "delivery": "api"},
                {**METERED, "delivery": "fax"}):
        r = await client.post("/v1/listings", json=listing_body(asset["id"], plans=[bad]), headers=holder.auth)
        assert_problem(r, 422)


async def test_the_quota_ends_bills_exactly_and_the_period_goes_on_the_ledger(databases, tmp_path) -> None:
    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock, fee_bps=500) as app:
        client, parties, operator = app.client, app.parties, app.operator
        bought = await sandbox_order(client, parties, operator, plans=[METERED])
        order_id = bought["order"]["id"]
        by_card: dict[str, int] = {}
        for row in bought["rows"]:
            by_card[row[4]] = by_card.get(row[4], 0) + 1
        used, calls = 0, 0
        for card, n in sorted(by_card.items()):
            r = await records(client, bought, card=card, limit=1000)
            if r.status_code == 429:
                problem = assert_problem(r, 429, "quota-exhausted")
                assert int(r.headers["retry-after"]) > 0 and problem["quota"] == 25
                break
            assert r.status_code == 200, r.text
            calls += 1
            used += len(r.json()["rows"])
            assert len(r.json()["rows"]) == min(n, 25 - (used - len(r.json()["rows"])))
        assert used == 25
        usage = (await client.get(f"/v1/orders/{order_id}/usage", headers=bought["holder"].auth)).json()
        [period] = usage["items"]
        assert (period["calls"], period["records"], period["status"]) == (calls, 25, "open")
        assert period["charge"] == {"amount": math.ceil(25 * 200 / 1000), "currency": "CNY"}

        clock.advance(timedelta(days=31))
        services = client.app.state.services
        client.blocking_portal.call(close_usage_once, services)  # (the app's own clock may get there first)
        [period] = (await client.get(f"/v1/orders/{order_id}/usage", headers=bought["buyer"].auth)).json()["items"]
        assert period["status"] == "billed" and period["merkle_root"]
        assert (await records(client, bought, card=sorted(by_card)[0])).status_code == 200  # a new period
        for _ in range(200):  # the buyer is told what to pay, and how
            inbox = (await client.get("/v1/notifications", headers=bought["buyer"].auth)).json()["items"]
            due = [n for n in inbox if n["event"] == "usage.charge_due"]
            if due:
                break
            await asyncio.sleep(0.05)
        assert due[0]["data"]["instructions"]["reference"] == period["reference"]
        assert due[0]["data"]["charge"] == period["charge"]

        # Paid like a bank transfer against the period's reference; exact amounts only.
        pay = f"/v1/orders/{order_id}/usage/1/payment"
        wrong = {"reference": "CMB-9", "amount": {"amount": 4, "currency": "CNY"}}
        assert_problem(await client.post(pay, json=wrong, headers=operator.auth), 422, "amount-mismatch")
        assert_problem(await client.post(pay, json={**wrong, "amount": period["charge"]},
                                         headers=bought["buyer"].auth), 403)
        r = await client.post(pay, json={**wrong, "amount": period["charge"]}, headers=operator.auth)
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
        assert_problem(await client.post(pay, json={**wrong, "amount": period["charge"]}, headers=operator.auth), 409)
        month = r.json()["paid_at"][:7]
        statement = (await client.get("/v1/providers/me/statement", params={"period": month},
                                      headers=bought["holder"].auth)).json()
        [charge] = statement["charges"]
        assert charge["charge"]["amount"] == 5 and charge["fee"]["amount"] == 0 and charge["records"] == 25
        assert statement["totals"][0]["gross"]["amount"] == 5

        # The regulator's overview counts the period (and, in another test, sandbox queries).
        r = await client.get("/v1/oversight/overview", headers=operator.auth)  # the last 30 days
        assert r.status_code == 200, r.text
        overview = r.json()
        assert overview["usage"]["metered"]["CNY"] == {"periods": 1, "lookups": calls, "records": 25, "charged": 5,
                                                      "paid": 5}

        # The period's entry and the payment's: confidential (only a document hash is public).
        for _ in range(100):
            entries = (await client.get("/v1/ledger/entries", params={"subject": f"order:{order_id}"})).json()
            types = [e["entry"]["type"] for e in entries["items"]]
            if "usage.period" in types and all(e["index"] is not None for e in entries["items"]):
                break
            await asyncio.sleep(0.05)
        assert types.count("usage.period") == 1 and "usage.charge_paid" in types
        assert all(set(e["entry"]["data"]) == {"document_sha256"} for e in entries["items"])


async def test_an_unpaid_charge_past_the_grace_stops_access(databases, tmp_path) -> None:
    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock, postpaid_grace="14d") as app:
        client, parties, operator = app.client, app.parties, app.operator
        bought = await sandbox_order(client, parties, operator, plans=[METERED])
        card = bought["rows"][0][4]
        assert (await records(client, bought, card=card)).status_code == 200
        clock.advance(timedelta(days=31))
        client.blocking_portal.call(close_usage_once, client.app.state.services)
        assert (await records(client, bought, card=card)).status_code == 200  # within the grace
        clock.advance(timedelta(days=15))
        assert_problem(await records(client, bought, card=card), 409, "charge-overdue")
        charge = (await client.get(f"/v1/orders/{bought['order']['id']}/usage",
                                   headers=bought["buyer"].auth)).json()["items"][0]["charge"]
        r = await client.post(f"/v1/orders/{bought['order']['id']}/usage/1/payment",
                              json={"reference": "CMB-1", "amount": charge}, headers=operator.auth)
        assert r.status_code == 200, r.text
        assert (await records(client, bought, card=card)).status_code == 200


async def test_listings_say_how_they_deliver_search_filters_by_it_and_the_catalog_says_it(client, bought) -> None:
    listing_id = bought["listing"]["id"]
    found = (await client.get("/v1/listings", params={"delivery": "api", "limit": 500})).json()
    assert listing_id in [item["id"] for item in found["items"]]
    for other in ("download", "sandbox"):
        found = (await client.get("/v1/listings", params={"delivery": other, "limit": 500})).json()
        assert listing_id not in [item["id"] for item in found["items"]]
    assert_problem(await client.get("/v1/listings", params={"delivery": "fax"}), 422)
    shown = (await client.get(f"/v1/listings/{listing_id}")).json()
    assert [p["delivery"] for p in shown["plans"]] == ["api"]
    catalog = (await client.get("/v1/catalog", params={"limit": 500})).json()
    dataset = next(d for d in catalog["dcat:dataset"] if d["@id"].endswith(listing_id))
    assert dataset["dcat:distribution"][0]["dct:description"].startswith("api: records looked up by key")


# GET …/records: one read of everything checked (the order, its asset and listing, the
# table's description, an overdue charge, the period's count so far); then the count (one
# UPDATE … RETURNING) and the call's receipt. The period's first call also makes its row.
LOOKUP_STATEMENTS = 3


async def test_a_look_up_stays_within_its_statement_budget(databases, tmp_path) -> None:
    """So the metered path does not grow back (docs/performance.md): counted with the
    background tasks off, on every engine of the app."""
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        bought = await sandbox_order(app.client, app.parties, app.operator, plans=[METERED])
        card = bought["rows"][0][4]
        with counted(app.client.app.state.services) as seen:
            first = await records(app.client, bought, card=card, limit=1)
            made = list(seen)
            seen.clear()
            seen.compiled.clear()
            again = await records(app.client, bought, card=card, limit=1)
        assert first.status_code == again.status_code == 200, (first.text, again.text)
        assert first.json()["records_left"] == 24 and again.json()["records_left"] == 23
        # The first also loads the table (its asset and revision) and makes the period's row
        # (then counts again).
        assert len(made) <= LOOKUP_STATEMENTS + 4, f"{len(made)} statements: {made}"
        assert len(seen) <= LOOKUP_STATEMENTS, f"{len(seen)} statements: {seen}"
        # The second from SQLAlchemy's statement cache, none compiled anew.
        assert seen.compiled == [], seen.compiled
