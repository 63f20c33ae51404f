"""Provider statements (清结算) and payouts over HTTP: the figures add up to the fen and
equal a recomputation from the orders, refunds count in the month they happen, and no
payout — alone or racing another — exceeds what is due."""

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from market.core import money
from market.core.clock import FakeClock
from tests.conftest import Party, assert_problem
from tests.registry_support import concurrently, ledger_items, own_app
from tests.trading.support import buyer, offer, pay_by_bank, place

MONEY_FIELDS = ("gross", "fee", "refunds", "net", "paid_out", "due")


def month_of(stamp: str) -> str:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m")


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


async def statement(client: Any, who: Any, period: str) -> dict[str, Any]:
    r = await client.get("/v1/providers/me/statement", params={"period": period}, headers=who.auth)
    assert r.status_code == 200, r.text
    return r.json()


def totals(found: dict[str, Any], currency: str = "CNY") -> dict[str, int]:
    for t in found["totals"]:
        if t["currency"] == currency:
            assert all(t[f]["currency"] == currency for f in MONEY_FIELDS)
            return {f: t[f]["amount"] for f in MONEY_FIELDS}
    return dict.fromkeys(MONEY_FIELDS, 0)


def assert_adds_up(found: dict[str, Any]) -> None:
    for t in found["totals"]:
        f = {k: t[k]["amount"] for k in MONEY_FIELDS}
        assert all(isinstance(v, int) for v in f.values())
        assert f["gross"] - f["fee"] - f["refunds"] == f["net"]
        assert f["net"] - f["paid_out"] == f["due"]


async def payout(client: Any, operator: Party, provider_id: str, period: str, amount: int, currency: str = "CNY",
                 reference: str = "ICBC-PAY-1", **headers: str) -> Any:
    return await client.post("/v1/payouts", headers={**operator.auth, **headers}, json={
        "provider": provider_id, "period": period, "amount": {"amount": amount, "currency": currency},
        "reference": reference})


async def refund(client: Any, operator: Party, b: Any, order: dict[str, Any]) -> dict[str, Any]:
    """Dispute ``order`` and refund it (a bank transfer with the bank's refund reference)."""
    r = await client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": "not as described"}, headers=b.auth)
    assert r.status_code == 201, r.text
    bank = {"reference": f"CMB-RF-{order['id']}"} if order["payment"]["provider"] == "bank_transfer" else {}
    r = await client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=operator.auth,
                          json={"decision": "refund", "reason": "agreed", **bank})
    assert r.status_code == 200, r.text
    return r.json()


async def bank_order(client: Any, operator: Party, b: Any, listing: dict[str, Any], model: str = "one_time") -> \
        dict[str, Any]:
    order = await place(client, b, listing, model)
    if order["status"] == "active":
        return order
    r = await pay_by_bank(client, operator, order)
    assert r.status_code == 200, r.text
    return r.json()


# -- examples ------------------------------------------------------------------------------


async def test_a_statement_of_one_month(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, fee_bps=333) as app:
        client, parties, operator = app.client, app.parties, app.operator
        holder, listing = await offer(client, parties, operator, plans=[
            {"model": "one_time", "price": {"amount": 100_001, "currency": "CNY"}},
            {"model": "free", "price": {"amount": 0, "currency": "CNY"}}])
        b = await buyer(client, parties)
        first = await bank_order(client, operator, b, listing)
        second = await bank_order(client, operator, b, listing)
        free = await bank_order(client, operator, b, listing, "free")
        await place(client, b, listing, "one_time")  # unpaid: not in any statement
        await refund(client, operator, b, second)
        period = month_of(first["settled_at"])

        found = await statement(client, holder, period)
        fee = 100_001 * 333 // 10_000  # 3,330 fen, rounded down
        assert totals(found) == {"gross": 200_002, "fee": 2 * fee, "refunds": 100_001 - fee,
                                 "net": 100_001 - fee, "paid_out": 0, "due": 100_001 - fee}
        assert_adds_up(found)
        assert found["provider"] == holder.id and found["period"] == period
        listed = {o["id"]: o for o in found["orders"]}
        assert set(listed) == {first["id"], second["id"], free["id"]}
        assert listed[second["id"]]["status"] == "refunded" and listed[second["id"]]["refunded_in_period"]
        assert listed[first["id"]] == {
            "id": first["id"], "status": "active", "settled_at": first["settled_at"], "refunded_at": None,
            "price": first["price"], "fee": first["fee"], "provider_share": first["provider_share"],
            "settled_in_period": True, "refunded_in_period": False}
        # Another month is empty; the buyer and staff have no "me" statement.
        assert (await statement(client, holder, "2001-01"))["totals"] == []
        for who in (b, operator):
            assert_problem(await client.get("/v1/providers/me/statement", params={"period": period},
                                            headers=who.auth), 403, "wrong-role")
        for bad in ("2026-13", "2026-00", "2026-5", "26-05", "2026-05-01", "", "1969-12"):
            assert_problem(await client.get("/v1/providers/me/statement", params={"period": bad},
                                            headers=holder.auth), 422)
        # Without a period: the current month (UTC) by the market's clock.
        r = await client.get("/v1/providers/me/statement", headers=holder.auth)
        assert r.status_code == 200, r.text
        assert r.json() == await statement(client, holder, this_month())

        # Payouts: operators only, a provider, a positive amount, never above what is due.
        due = totals(found)["due"]
        assert_problem(await payout(client, holder, holder.id, period, 1), 403, "wrong-role")
        assert_problem(await payout(client, operator, "acct_nonesuch", period, 1), 404)
        assert_problem(await payout(client, operator, b.id, period, 1), 422, "not-a-provider")
        assert_problem(await payout(client, operator, holder.id, period, 0), 422, "payout-not-positive")
        assert_problem(await payout(client, operator, holder.id, period, -1), 422)
        assert_problem(await payout(client, operator, holder.id, "2026-13", 1), 422)
        problem = assert_problem(await payout(client, operator, holder.id, period, due + 1), 422,
                                 "payout-exceeds-due")
        assert problem["due"] == {"amount": due, "currency": "CNY"}
        assert f"{money.human(due + 1, 'CNY')} exceeds what is due" in problem["detail"], problem
        assert problem["detail"].endswith(f": {money.human(due, 'CNY')}"), problem
        assert_problem(await payout(client, operator, holder.id, period, 1, "USD"), 422, "payout-exceeds-due")
        assert_problem(await payout(client, operator, holder.id, "2001-01", 1), 422, "payout-exceeds-due")

        key = {"Idempotency-Key": "3f0a5d2e-8b1c-4c7e-9d6f-1a2b3c4d5e6f"}
        r = await payout(client, operator, holder.id, period, due - 1, **key)
        assert r.status_code == 201, r.text
        made = r.json()
        assert (made["provider"], made["period"], made["amount"], made["reference"]) == \
            (holder.id, period, {"amount": due - 1, "currency": "CNY"}, "ICBC-PAY-1")
        again = await payout(client, operator, holder.id, period, due - 1, **key)
        assert again.status_code == 201 and again.json() == made
        found = await statement(client, holder, period)
        assert totals(found)["paid_out"] == due - 1 and totals(found)["due"] == 1
        assert [p["id"] for p in found["payouts"]] == [made["id"]]
        assert_problem(await payout(client, operator, holder.id, period, 2), 422, "payout-exceeds-due")
        assert (await payout(client, operator, holder.id, period, 1, reference="ICBC-PAY-2")).status_code == 201
        assert totals(await statement(client, holder, period))["due"] == 0

        entries = [i["entry"] for i in await ledger_items(client, made["id"], kind="payout")]
        assert [e["type"] for e in entries] == ["payout.recorded"]
        assert entries[0]["actor"] == "market" and set(entries[0]["data"]) == {"document_sha256"}
        assert holder.id not in json.dumps(entries) and "ICBC" not in json.dumps(entries)


async def test_a_refund_counts_in_the_month_it_happens(databases, tmp_path) -> None:
    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock, dispute_window="400d", fee_bps=500) as app:
        client, parties, operator = app.client, app.parties, app.operator
        holder, listing = await offer(client, parties, operator)
        b = await buyer(client, parties)
        sold = await bank_order(client, operator, b, listing)
        april = month_of(sold["settled_at"])
        due = totals(await statement(client, holder, april))["due"]
        assert due == sold["provider_share"]["amount"] == 836_000
        assert (await payout(client, operator, holder.id, april, due)).status_code == 201

        clock.advance(timedelta(days=40))  # the next month at least
        resolved = await refund(client, operator, b, sold)
        may = month_of(resolved["refund"]["refunded_at"])
        assert may != april
        # Without a period, the statement is of the month the market's clock is in, not the host's.
        r = await client.get("/v1/providers/me/statement", headers=holder.auth)
        assert r.status_code == 200, r.text
        assert r.json()["period"] == may == month_of(clock.now().isoformat()) != this_month()
        before = await statement(client, holder, april)
        assert totals(before) == {"gross": 880_000, "fee": 44_000, "refunds": 0, "net": 836_000,
                                  "paid_out": 836_000, "due": 0}  # April's statement does not change
        after = await statement(client, holder, may)
        assert totals(after) == {"gross": 0, "fee": 0, "refunds": 836_000, "net": -836_000, "paid_out": 0,
                                 "due": -836_000}  # owed by the provider
        assert [(o["id"], o["settled_in_period"], o["refunded_in_period"]) for o in after["orders"]] == \
            [(sold["id"], False, True)]
        assert_problem(await payout(client, operator, holder.id, may, 1), 422, "payout-exceeds-due")


async def test_two_concurrent_payouts_never_exceed_what_is_due(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path) as app:
        client, parties, operator = app.client, app.parties, app.operator
        holder, listing = await offer(client, parties, operator)
        b = await buyer(client, parties)
        order = await bank_order(client, operator, b, listing)
        period = month_of(order["settled_at"])
        due = totals(await statement(client, holder, period))["due"]
        share = due * 6 // 10  # two of them exceed due
        body = lambda i: {"provider": holder.id, "period": period,  # noqa: E731
                          "amount": {"amount": share, "currency": "CNY"}, "reference": f"ICBC-{i}"}
        for _ in range(2):
            responses = await concurrently(client, *[("POST", "/v1/payouts", {"json": body(i),
                                                                               "headers": operator.auth})
                                                     for i in range(3)])
            codes = sorted(r.status_code for r in responses)
            assert codes in ([201, 422, 422], [422, 422, 422]), [r.text for r in responses]
        found = await statement(client, holder, period)
        assert totals(found)["paid_out"] == share and totals(found)["due"] == due - share >= 0


# -- the property: a few hundred random orders add up to the fen ---------------------------

Step = tuple[Any, ...]
steps = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 99)),  # a plan, by index modulo the plans offered
    st.tuples(st.just("order"), st.integers(0, 99)),
    st.tuples(st.just("order"), st.integers(0, 99)),
    st.tuples(st.just("wait"), st.integers(1, 35)),  # days
    st.tuples(st.just("refund"), st.integers(0, 10**6)),  # one of the active orders
    st.tuples(st.just("payout"), st.integers(0, 10**6), st.integers(1, 130)),  # a month, % of its due
)
scenario = st.fixed_dictionaries({
    "fee_bps": st.one_of(st.sampled_from([0, 1, 333, 500, 9_999, 10_000]), st.integers(0, 10_000)),
    "cny": st.lists(st.integers(1, 10**10), min_size=1, max_size=5),  # fen, odd ones too
    "usd": st.integers(1, 10**8),
    "steps": st.lists(steps, min_size=50, max_size=90),  # ~20-40 orders
})


async def provider_orders(client: Any, holder: Any) -> list[dict[str, Any]]:
    """Every order of the provider, as it sees them (all pages)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"side": "provider", "limit": 500, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/orders", params=params, headers=holder.auth)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


def recompute(orders: list[dict[str, Any]], payouts: list[dict[str, Any]], period: str) -> dict[str, dict[str, int]]:
    """The statement's figures straight from the orders and the payouts made."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MONEY_FIELDS, 0))
    for o in orders:
        currency = o["price"]["currency"]
        if o["settled_at"] and month_of(o["settled_at"]) == period:
            sums[currency]["gross"] += o["price"]["amount"]
            sums[currency]["fee"] += o["fee"]["amount"]
        if o["refunded_at"] and month_of(o["refunded_at"]) == period:
            sums[currency]["refunds"] += o["provider_share"]["amount"]
    for p in payouts:
        if p["period"] == period:
            sums[p["amount"]["currency"]]["paid_out"] += p["amount"]["amount"]
    for f in sums.values():
        f["net"] = f["gross"] - f["fee"] - f["refunds"]
        f["due"] = f["net"] - f["paid_out"]
    return dict(sums)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario)
async def test_statements_add_up_to_the_fen(databases, tmp_path_factory, case: dict[str, Any]) -> None:
    fee_bps = case["fee_bps"]
    clock = FakeClock()
    async with own_app(databases, tmp_path_factory.mktemp("statements"), clock=clock, fee_bps=fee_bps,
                       dispute_window="400d", background_tasks=False) as app:
        client, parties, operator = app.client, app.parties, app.operator
        cny = [{"model": "one_time", "price": {"amount": a, "currency": "CNY"}} for a in case["cny"]]
        holder, listing = await offer(client, parties, operator,
                                      plans=[*cny, {"model": "free", "price": {"amount": 0, "currency": "CNY"}}])
        # A second listing of the same provider, priced in dollars.
        from tests.listings.support import listable_asset, publish

        asset = await listable_asset(client, holder, operator)
        dollars = await publish(client, holder, asset["id"], plans=[
            {"model": "one_time", "price": {"amount": case["usd"], "currency": "USD"}}])
        _, stranger_listing = await offer(client, parties, operator)  # another provider's sales: not in ours
        b = await buyer(client, parties)
        await bank_order(client, operator, b, stranger_listing)

        choices = [(listing, p["id"]) for p in listing["plans"]] + [(dollars, dollars["plans"][0]["id"])]
        free_plans = {p["id"] for p in listing["plans"] if p["model"] == "free"}
        active: list[dict[str, Any]] = []
        payouts: list[dict[str, Any]] = []
        refused = refunds = 0
        periods: set[str] = set()
        for step in case["steps"]:
            if step[0] == "order":
                chosen, plan_id = choices[step[1] % len(choices)]
                body = {"listing_id": chosen["id"], "plan_id": plan_id, "purpose": "research",
                        "payment_method": "free" if plan_id in free_plans else "bank_transfer"}
                r = await client.post("/v1/orders", json=body, headers=b.auth)
                assert r.status_code == 201, r.text
                order = r.json()
                if order["status"] != "active":
                    r = await pay_by_bank(client, operator, order)
                    assert r.status_code == 200, r.text
                    order = r.json()
                price = order["price"]["amount"]
                assert order["fee"]["amount"] == price * fee_bps // 10_000
                assert order["provider_share"]["amount"] == price - order["fee"]["amount"]
                active.append(order)
                periods.add(month_of(order["settled_at"]))
            elif step[0] == "wait":
                clock.advance(timedelta(days=step[1]))
            elif step[0] == "refund" and active:
                resolved = await refund(client, operator, b, active.pop(step[1] % len(active)))
                refunds += 1
                periods.add(month_of(resolved["refund"]["refunded_at"]))
            elif step[0] == "payout" and periods:
                period = sorted(periods)[step[1] % len(periods)]
                found = await statement(client, holder, period)
                assert_adds_up(found)
                for currency in ("CNY", "USD"):
                    due = totals(found, currency)["due"]
                    amount = max(1, due * step[2] // 100)
                    r = await payout(client, operator, holder.id, period, amount, currency,
                                     reference=f"ICBC-{len(payouts)}")
                    if 0 < amount <= due:
                        assert r.status_code == 201, r.text
                        payouts.append(r.json())
                    else:
                        assert_problem(r, 422, "payout-exceeds-due")
                        refused += 1

        event(f"orders {10 * (len([s for s in case['steps'] if s[0] == 'order']) // 10)}+")
        event(f"months {len(periods)}, refunds {bool(refunds)}, payouts {bool(payouts)}, refused {bool(refused)}")
        # Every month touched, and the current one: the statement equals the recomputation.
        orders = await provider_orders(client, holder)
        assert len([o for o in orders if o["settled_at"]]) == sum(1 for s in case["steps"] if s[0] == "order")
        grand = defaultdict(int)
        for period in sorted(periods | {month_of(clock.now().isoformat())}):
            found = await statement(client, holder, period)
            assert_adds_up(found)
            expected = recompute(orders, payouts, period)
            assert {t["currency"]: {f: t[f]["amount"] for f in MONEY_FIELDS} for t in found["totals"]} == expected
            assert {o["id"] for o in found["orders"]} == {
                o["id"] for o in orders if (o["settled_at"] and month_of(o["settled_at"]) == period)
                or (o["refunded_at"] and month_of(o["refunded_at"]) == period)}
            assert sorted(p["id"] for p in found["payouts"]) == sorted(p["id"] for p in payouts
                                                                     if p["period"] == period)
            for t in found["totals"]:
                grand[t["currency"]] += t["net"]["amount"]
        # Over all months: what the provider earned is its share of what was not refunded.
        kept = defaultdict(int)
        for o in orders:
            if o["settled_at"] and o["status"] != "refunded":
                kept[o["price"]["currency"]] += o["provider_share"]["amount"]
        assert {c: v for c, v in grand.items() if v} == {c: v for c, v in kept.items() if v}
