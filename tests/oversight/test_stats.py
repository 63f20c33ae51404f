"""The oversight overview: kept in the settling and refunding transactions, checked
against a recount from ``orders`` over randomized trades (prices, currencies, days,
refunds); periods, currencies, bad input, and who may read it."""

import contextlib
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from market.accounts import uscc
from market.accounts.models import Account
from market.core.clock import FakeClock
from market.oversight import stats
from market.registry.categories import IDS
from market.registry.models import Asset
from market.trading.models import Order
from tests.conftest import Parties, Party, assert_problem, backend, random_uscc
from tests.listings.support import listable_asset, publish
from tests.registry_support import add_key, own_app
from tests.trading.support import buyer, offer, pay_by_bank, place

MEASURES = ("orders", "value", "refunds", "refunded_value")
# (currency, category, grade) of each listing; each from a provider of its own.
LISTINGS = [("CNY", "transport", "general"), ("CNY", "energy", "general"), ("USD", "transport", "general"),
            ("EUR", "weather", "general")]


def _plans(rng: random.Random, currency: str) -> list[dict[str, Any]]:
    plans = [{"model": "one_time", "price": {"amount": rng.randint(1, 5_000_000), "currency": currency}}
             for _ in range(3)]
    return [*plans, {"model": "free", "price": {"amount": 0, "currency": currency}}]


async def _order(client: Any, who: Any, operator: Party, listing: dict[str, Any],
                 plan: dict[str, Any]) -> tuple[str, bool]:
    free = plan["model"] == "free"
    body = {"listing_id": listing["id"], "plan_id": plan["id"], "purpose": "research",
            "payment_method": "free" if free else "bank_transfer"}
    r = await client.post("/v1/orders", json=body, headers=who.auth)
    assert r.status_code == 201, r.text
    order = r.json()
    if not free:
        r = await pay_by_bank(client, operator, order)
        assert r.status_code == 200, r.text
    return order["id"], free


async def _refund(client: Any, who: Any, operator: Party, order_id: str, free: bool) -> None:
    r = await client.post(f"/v1/orders/{order_id}/disputes", json={"reason": "数据与条款不符"}, headers=who.auth)
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=operator.auth,
                          json={"decision": "refund", "reason": "checked", **({} if free else {"reference": "REF-1"})})
    assert r.status_code == 200, r.text
    assert r.json()["order_status"] == "refunded"


async def _overview(client: Any, who: Any, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/oversight/overview", params=params, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def _recount(orders: list[Order], assets: dict[str, Asset], accounts: dict[str, Account], lo: str, hi: str,
             currency: str | None = None) -> dict[str, Any]:
    """The overview computed the slow way, from the orders themselves."""
    totals: dict[str, dict[str, Any]] = {}
    series: dict[str, dict[str, dict[str, dict[str, int]]]] = {
        d: defaultdict(dict) for d in ("day", "category", "grade", "provider", "region")}
    buyers: dict[str, set[str]] = defaultdict(set)
    providers: dict[str, set[str]] = defaultdict(set)

    def add(o: Order, day: str, **amounts: int) -> None:
        asset = assets[o.asset_id]
        keys = {"day": day, "category": asset.category, "grade": asset.grade, "provider": o.provider_id,
                "region": (accounts[o.provider_id].uscc or "")[2:8]}
        for dim, key in keys.items():
            slot = series[dim][o.currency].setdefault(key, dict.fromkeys(MEASURES, 0))
            for m, v in amounts.items():
                slot[m] += v
        total = totals.setdefault(o.currency, {**dict.fromkeys(MEASURES, 0), "buyers": 0, "providers": 0})
        for m, v in amounts.items():
            total[m] += v

    for o in orders:
        if currency is not None and o.currency != currency:
            continue
        if o.settled_at is not None and lo <= stats.day_of(o.settled_at) < hi:
            add(o, stats.day_of(o.settled_at), orders=1, value=o.price)
            buyers[o.currency].add(o.buyer_id)
            providers[o.currency].add(o.provider_id)
        if o.refunded_at is not None and lo <= stats.day_of(o.refunded_at) < hi:
            add(o, stats.day_of(o.refunded_at), refunds=1, refunded_value=o.price)
    for cur, total in totals.items():
        total["buyers"], total["providers"] = len(buyers[cur]), len(providers[cur])
    return {"totals": totals, "series": {dim: {cur: {k: v for k, v in keys.items()} for cur, keys in by.items()}
                                         for dim, by in series.items()}}


def _as_maps(body: dict[str, Any]) -> dict[str, Any]:
    return {"totals": body["totals"]["by_currency"],
            "series": {dim: {cur: {item["key"]: {m: item[m] for m in MEASURES} for item in items}
                             for cur, items in by.items()} for dim, by in body["series"].items()}}


def _rows(client: Any) -> tuple[list[Order], dict[str, Asset], dict[str, Account]]:
    async def run() -> Any:
        async with client.app.state.services.read_sessionmaker() as s:
            orders = list((await s.execute(select(Order))).scalars().all())
            assets = {a.id: a for a in (await s.execute(select(Asset))).scalars().all()}
            accounts = {a.id: a for a in (await s.execute(select(Account))).scalars().all()}
            return orders, assets, accounts

    return client.blocking_portal.call(run)


@pytest.mark.parametrize("seed", [7, 2026])
async def test_overview_equals_a_recount_from_the_orders(databases: Any, tmp_path: Any, seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock, dispute_window="3650d", background_tasks=False) as market:
        client, parties, operator = market.client, market.parties, market.operator
        regulator = await parties.staff("regulator")
        listings = []
        for currency, category, grade in LISTINGS:
            _, listing = await offer(client, parties, operator, plans=_plans(rng, currency),
                                     asset={"category": category, "grade": grade})
            listings.append(listing)
        buyers = [await buyer(client, parties) for _ in range(4)]
        first_day = clock.now().astimezone(UTC).date()
        active: list[tuple[Any, tuple[str, bool]]] = []
        for _ in range(36):
            clock.advance(timedelta(hours=rng.randint(0, 30)))
            if active and rng.random() < 0.3:
                who, (order_id, free) = active.pop(rng.randrange(len(active)))
                await _refund(client, who, operator, order_id, free)
            else:
                listing = rng.choice(listings)
                who = rng.choice(buyers)
                plan = rng.choice(listing["plans"])
                active.append((who, await _order(client, who, operator, listing, plan)))
        last_day = clock.now().astimezone(UTC).date()

        orders, assets, accounts = _rows(client)
        assert any(o.refunded_at for o in orders) and len({o.currency for o in orders}) >= 2
        everything = (first_day.isoformat(), (last_day + timedelta(days=1)).isoformat())
        middle = ((first_day + timedelta(days=5)).isoformat(), (first_day + timedelta(days=15)).isoformat())
        for lo, hi in (everything, middle):
            for currency in (None, "CNY", "USD"):
                params = {"from": lo, "to": hi, **({"currency": currency} if currency else {})}
                for who in (regulator, operator):
                    body = await _overview(client, who, **params)
                    assert (body["from"], body["to"], body["currency"]) == (lo, hi, currency)
                    assert _as_maps(body) == _recount(orders, assets, accounts, lo, hi, currency), (lo, hi, currency)
                    registered = sum(1 for a in assets.values() if a.registered_at is not None
                                     and lo <= stats.day_of(a.registered_at) < hi)
                    assert body["totals"]["registrations"] == registered
        # Orders of the whole run, money by currency only.
        body = await _overview(client, regulator, **{"from": everything[0], "to": everything[1]})
        settled = [o for o in orders if o.settled_at is not None]
        assert sum(t["orders"] for t in body["totals"]["by_currency"].values()) == len(settled)
        for cur, total in body["totals"]["by_currency"].items():
            assert total["value"] == sum(o.price for o in settled if o.currency == cur)
        # Days ascending; other series by value, descending.
        for _cur, items in body["series"]["day"].items():
            assert [i["key"] for i in items] == sorted(i["key"] for i in items)
        for _cur, items in body["series"]["provider"].items():
            assert [i["value"] for i in items] == sorted((i["value"] for i in items), reverse=True)
        # A period with nothing in it.
        empty = await _overview(client, regulator, **{"from": "2001-01-01", "to": "2001-02-01"})
        assert empty["totals"]["by_currency"] == {} and all(v == {} for v in empty["series"].values())


async def test_region_is_characters_3_to_8_of_the_providers_uscc(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path) as market:
        client, parties, operator = market.client, market.parties, market.operator
        holder, listing = await offer(client, parties, operator, asset={"category": "transport"})
        b = await buyer(client, parties)
        order = await place(client, b, listing, "one_time")
        assert (await pay_by_bank(client, operator, order)).status_code == 200
        body = await _overview(client, operator)
        r = await client.get("/v1/accounts/me", headers=holder.auth)
        code = r.json()["uscc"]
        assert [i["key"] for i in body["series"]["region"]["CNY"]] == [code[2:8]]
        assert body["series"]["category"]["CNY"][0]["key"] == "transport"
        assert body["totals"]["by_currency"]["CNY"] == {"orders": 1, "value": order["price"]["amount"], "refunds": 0,
                                                         "refunded_value": 0, "buyers": 1, "providers": 1}


def uscc_in(region: str) -> str:
    """A well-formed USCC whose characters 3-8 are ``region``."""
    first17 = "91" + region + random_uscc()[8:17]
    return first17 + uscc.check_character(first17)


async def test_region_entries_name_their_division(databases: Any, tmp_path: Any) -> None:
    """Each region entry keeps its code as ``key`` and its measures, and gains ``name_zh``
    (null for a code the market does not know)."""
    async with own_app(databases, tmp_path) as market:
        client, parties, operator = market.client, market.parties, market.operator
        b = await buyer(client, parties)
        nanshan = await add_key(client, await parties.verified(["provider"], uscc=uscc_in("440305")))
        unknown = await add_key(client, await parties.verified(["provider"], uscc=uscc_in("990099")))
        for holder, amount in ((nanshan, 500), (unknown, 300)):
            asset = await listable_asset(client, holder, operator)
            plans = [{"model": "one_time", "price": {"amount": amount, "currency": "CNY"}}]
            listing = await publish(client, holder, asset["id"], plans=plans)
            order = await place(client, b, listing, "one_time")
            assert (await pay_by_bank(client, operator, order)).status_code == 200
        body = await _overview(client, operator)
        assert body["series"]["region"]["CNY"] == [
            {"key": "440305", "orders": 1, "value": 500, "refunds": 0, "refunded_value": 0, "name_zh": "南山区"},
            {"key": "990099", "orders": 1, "value": 300, "refunds": 0, "refunded_value": 0, "name_zh": None},
        ]
        assert all("name_zh" not in i for dim in ("category", "grade", "provider") for i in body["series"][dim]["CNY"])


async def test_a_contract_from_before_the_closed_list_counts_under_its_id() -> None:
    """A contract written before migration 0020 names its category in free text: its
    refund (counted under the contract's dimensions) goes where 0020 moved its settlement."""
    import json

    contract = {"asset": {"category": "交通", "grade": "general"}, "provider": {"uscc": "91440305MA5F00000X"}}
    order = Order(id="ord_1", currency="CNY", provider_id="acct_1", contract=json.dumps(contract))
    no_reads: Any = None  # the contract has all it needs
    dims = await stats.dimensions(no_reads, order)
    assert (dims.category, dims.region) == ("transport", "440305") and dims.category in IDS


def test_keys_and_regions() -> None:
    assert stats.region_of("91440300MA5F00000X") == "440300"
    assert stats.region_of(None) == "" and stats.region_of("short") == ""
    dims = stats.Dimensions("CNY", "transport", "general", "acct_1", "440300")
    assert stats.stat_key("2026-03-01", dims) == {"day": "2026-03-01", "currency": "CNY", "category": "transport",
                                                  "grade": "general", "provider_id": "acct_1", "region": "440300"}
    assert stats.period("2026-03-01", "2026-04-01", date(2026, 1, 1)) == (date(2026, 3, 1), date(2026, 4, 1))
    assert stats.period(None, None, date(2026, 1, 31)) == (date(2026, 1, 2), date(2026, 2, 1))


async def test_bad_periods_and_currencies_are_422(client: Any, regulator: Party) -> None:
    for params in ({"from": "2026-13-01"}, {"to": "yesterday"}, {"from": "2026-03-01", "to": "2026-03-01"},
                   {"from": "2026-04-01", "to": "2026-03-01"}, {"from": "2026-3-1"}, {"currency": "yuan"},
                   {"from": "1990-01-01", "to": "2026-01-01"}):
        assert_problem(await client.get("/v1/oversight/overview", params=params, headers=regulator.auth), 422)


async def test_only_regulators_and_operators_read_oversight(client: Any, parties: Parties, operator: Party,
                                                            regulator: Party) -> None:
    holder = await parties.verified(["provider"])
    b = await parties.verified(["buyer"])
    for path in ("/v1/oversight/overview", "/v1/oversight/trades", "/v1/oversight/refusals"):
        assert_problem(await client.get(path), 401)
        assert_problem(await client.get(path, headers={"Accept": "text/csv"}), 401)
        for who in (holder, b):
            assert_problem(await client.get(path, headers=who.auth), 403)
            assert_problem(await client.get(path, headers={**who.auth, "Accept": "text/csv"}), 403)
        for who in (regulator, operator):
            assert (await client.get(path, headers=who.auth)).status_code == 200


def test_a_period_is_whole_months_and_its_edges() -> None:
    from datetime import date

    from market.oversight.stats import split

    assert split(date(2026, 3, 1), date(2026, 4, 1)) == ([], ("2026-03", "2026-04"))
    assert split(date(2026, 3, 5), date(2026, 3, 20)) == ([(date(2026, 3, 5), date(2026, 3, 20))], None)
    assert split(date(2026, 1, 15), date(2026, 4, 3)) == (
        [(date(2026, 1, 15), date(2026, 2, 1)), (date(2026, 4, 1), date(2026, 4, 3))], ("2026-02", "2026-04"))
    assert split(date(2025, 12, 1), date(2026, 12, 2)) == ([(date(2026, 12, 1), date(2026, 12, 2))],
                                                           ("2025-12", "2026-12"))
    assert split(date(2026, 1, 31), date(2026, 2, 1)) == ([(date(2026, 1, 31), date(2026, 2, 1))], None)


async def test_settlements_at_the_same_moment_do_not_queue_on_one_row(databases: Any, tmp_path: Any) -> None:
    """PostgreSQL: two transactions count a settlement under the same key (and so the same
    day total) at once; the second is not held until the first commits, because each
    connection adds to its own shard's rows. The overview sums the shards. (The parties
    are those of the day's first settlement, already counted: a party's first settlement
    of a day still waits for another of the same party made at the same moment.)"""
    if backend() != "postgresql":
        pytest.skip("row locks between writers: SQLite has one writer at a time")
    from sqlalchemy import text

    from market.oversight.models import SHARDS

    async with own_app(databases, tmp_path, background_tasks=False) as market:
        engine = market.client.app.state.services.engine
        statement, _ = stats._settled_at_once()
        day = stats.day_of(datetime.now(UTC))
        key = stats.stat_key(day, stats.Dimensions("CNY", "transport", "general", "acct_shard_test", ""))
        values = {**key, "month": day[:7], "refunds": 0, "refunded_value": 0, "orders": 1, "value": 700,
                  "buyer_account": "acct_shard_buyer", "provider_account": "acct_shard_test"}

        async def race() -> int:  # in the app's event loop, where its engine lives
            async with contextlib.AsyncExitStack() as stack:
                # Two connections of different shards (a backend's pid picks its shard).
                held: dict[int, Any] = {}
                while len(held) < 2:
                    conn = await stack.enter_async_context(engine.connect())
                    pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                    held.setdefault(pid % SHARDS, conn)
                first, second = held.values()
                await first.execute(statement, values)  # the day's first: its parties are new
                await first.commit()
                await first.execute(statement, values)  # its row locks held until it commits
                await second.execute(text("SET LOCAL lock_timeout = '2s'"))
                await second.execute(statement, {**values, "value": 300})  # would wait, then time out
                await second.commit()
                await first.commit()
                return int((await first.execute(text("SELECT count(*) FROM trade_days WHERE day = :d AND "
                                                     "currency = 'CNY'"), {"d": day})).scalar_one())

        assert market.client.blocking_portal.call(race) == 2  # two shards of the day's total
        totals = (await _overview(market.client, market.operator))["totals"]["by_currency"]["CNY"]
        assert (totals["orders"], totals["value"], totals["buyers"], totals["providers"]) == (3, 1700, 1, 1)
