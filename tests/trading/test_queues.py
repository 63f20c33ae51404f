"""What the parties work from each day: order lists that name the listing and the plan,
the operator's queue of bank transfers to confirm (each with what the buyer quotes),
and every dispute one may act on — in one query per page, never one per row, and
nobody's list holding another's orders or disputes."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.conftest import Parties, Party, assert_problem
from tests.registry_support import own_app
from tests.trading.support import FREE, ONE_TIME, buyer, offer, pay_by_bank, place, plan_of

QUEUE = {"status": "awaiting_payment", "payment_method": "bank_transfer"}


async def items(client: Any, path: str, who: Any, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list, following ``next_cursor``."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=who.auth)
        assert r.status_code == 200, r.text
        found += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return found


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [x["id"] for x in found]


@contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs, once each (on PostgreSQL
    the reading engine is the writing one with options: both hear the same execution)."""
    seen: dict[int, tuple[Any, str]] = {}  # the context kept, so that its id is not reused

    def record(_conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: Any) -> None:
        seen[id(context)] = (context, statement)

    services = app.state.services
    engines = {services.engine.sync_engine, services.read_engine.sync_engine.engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    found: list[str] = []
    try:
        yield found
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
        found.extend(statement for _, statement in seen.values())


def reads_of(seen: list[str], table: str) -> int:
    """How many of the statements ``seen`` read ``table``."""
    return sum(1 for s in seen if s.lstrip().upper().startswith("SELECT")
               and re.search(rf"\b(FROM|JOIN)\s+{table}\b", s, re.IGNORECASE))


# -- orders ----------------------------------------------------------------------------------


async def test_orders_name_their_listing_and_plan(client, parties: Parties, operator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    free = await place(client, b, listing, "free")
    paid = await place(client, b, listing, "one_time")
    named = {"id": listing["id"], "title": listing["title"]}
    assert free["listing"] == paid["listing"] == named  # in the 201 already

    for who, side in ((b, "buyer"), (holder, "provider")):
        listed = await items(client, "/v1/orders", who, side=side)
        assert ids(listed) == [free["id"], paid["id"]]
        for item, model in zip(listed, ("free", "one_time"), strict=True):
            assert item["listing"] == named
            plan = item["terms"]["plan"]
            assert (plan["id"], plan["model"]) == (plan_of(listing, model), model)
    for who in (b, holder, operator):
        r = await client.get(f"/v1/orders/{paid['id']}", headers=who.auth)
        assert r.status_code == 200 and r.json()["listing"] == named, r.text

    # The title as the listing reads now (the plan stays the one accepted).
    r = await client.patch(f"/v1/listings/{listing['id']}", json={"title": "深圳交通出行数据 2026"}, headers=holder.auth)
    assert r.status_code == 200, r.text
    [again, _] = await items(client, "/v1/orders", b)
    assert again["listing"] == {"id": listing["id"], "title": "深圳交通出行数据 2026"}


async def test_a_bank_transfer_order_says_how_to_pay(client, parties: Parties, operator: Party) -> None:
    holder, listing = await offer(client, parties, operator)
    b = await buyer(client, parties)
    order = await place(client, b, listing, "one_time")
    instructions = order["payment"]["instructions"]
    assert instructions == {"account": parties.settings.bank_account,
                            "reference": order["id"].upper().replace("_", "-")}
    for who in (b, holder, operator):
        assert (await client.get(f"/v1/orders/{order['id']}", headers=who.auth)).json()["payment"]["instructions"] \
            == instructions
    [listed] = [o for o in await items(client, "/v1/orders", b) if o["id"] == order["id"]]
    assert listed["payment"]["instructions"] == instructions
    assert (await place(client, b, listing, "free"))["payment"]["instructions"] is None

    # A transfer quoting another order's reference is not booked to this one: nothing changes.
    other = await place(client, b, listing, "one_time")
    url = f"/v1/orders/{order['id']}/payment"
    body = {"reference": "CMB-20260501-0009", "amount": order["price"]}
    for quoted in (other["payment"]["instructions"]["reference"], "ORD-", "payment for data"):
        problem = assert_problem(await client.post(url, json={**body, "quoted_reference": quoted},
                                                   headers=operator.auth), 422, "reference-mismatch")
        assert problem["expected"] == instructions["reference"]
        assert [e["field"] for e in problem["errors"]] == ["quoted_reference"]
    assert_problem(await client.post(url, json={**body, "quoted_reference": ""}, headers=operator.auth), 422)
    seen = (await client.get(f"/v1/orders/{order['id']}", headers=b.auth)).json()
    assert seen["status"] == "awaiting_payment" and seen["payment"]["instructions"] == instructions

    # Banks mangle a remark's case and separators: letters and digits are what count.
    quoted = " " + instructions["reference"].lower().replace("-", " ")
    r = await client.post(url, json={**body, "quoted_reference": quoted}, headers=operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["payment"]["reference"] == "bank:CMB-20260501-0009"
    assert r.json()["payment"]["instructions"] is None  # paid: nothing more to pay with
    # Without quoted_reference the operator vouches for the match itself, as before.
    assert (await pay_by_bank(client, operator, other)).status_code == 200


async def test_the_operators_queue_of_bank_transfers(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client, parties, operator = app.client, app.parties, app.operator
        regulator = await parties.staff("regulator")
        holder, listing = await offer(client, parties, operator, plans=[ONE_TIME, FREE])
        other_holder, other_listing = await offer(client, parties, operator, plans=[ONE_TIME])
        b1, b2, stranger = await buyer(client, parties), await buyer(client, parties), await buyer(client, parties)
        first = await place(client, b1, listing, "one_time")
        free = await place(client, b1, listing, "free")
        settled = await place(client, b2, other_listing, "one_time")
        assert (await pay_by_bank(client, operator, settled)).status_code == 200
        dropped = await place(client, b2, listing, "one_time")
        assert (await client.post(f"/v1/orders/{dropped['id']}/cancellation", headers=b2.auth)).status_code == 200
        second = await place(client, b2, other_listing, "one_time")
        everything = [first["id"], free["id"], settled["id"], dropped["id"], second["id"]]

        queue = await items(client, "/v1/orders", operator, **QUEUE)
        assert ids(queue) == [first["id"], second["id"]]
        for item, placed in zip(queue, (first, second), strict=True):
            assert item["payment"]["instructions"] == placed["payment"]["instructions"] is not None
            assert item["price"] == placed["price"] and item["listing"]["title"] == placed["listing"]["title"]
        assert ids(await items(client, "/v1/orders", operator, **QUEUE, limit=1)) == ids(queue)  # page by page
        r = await client.get("/v1/orders", params={**QUEUE, "limit": 1}, headers=operator.auth)
        assert ids(r.json()["items"]) == [first["id"]] and r.json()["next_cursor"]
        for staff in (operator, regulator):
            assert ids(await items(client, "/v1/orders", staff)) == everything
        assert ids(await items(client, "/v1/orders", operator, payment_method="free")) == [free["id"]]
        assert ids(await items(client, "/v1/orders", operator, side="buyer")) == []  # its own: none

        # Everyone else: its own orders only, whatever the filters.
        assert ids(await items(client, "/v1/orders", b1, **QUEUE)) == [first["id"]]
        assert ids(await items(client, "/v1/orders", b2, **QUEUE)) == [second["id"]]
        assert ids(await items(client, "/v1/orders", holder, side="provider", **QUEUE)) == [first["id"]]
        assert ids(await items(client, "/v1/orders", other_holder, side="provider")) == [settled["id"], second["id"]]
        assert ids(await items(client, "/v1/orders", holder, **QUEUE)) == []  # as buyer: none
        assert await items(client, "/v1/orders", stranger) == []

        for bad in ({"payment_method": "cash"}, {"payment_method": "card"}, {"side": "seller"},
                    {"status": "paid"}, {"payment_method": ""}):
            problem = assert_problem(await client.get("/v1/orders", params=bad, headers=operator.auth), 422,
                                     "validation-error")
            assert [e["field"] for e in problem["errors"]] == list(bad)
        assert_problem(await client.get("/v1/orders", params=QUEUE), 401)

        # One page: one read of the orders and one of their listings' titles, however many.
        with statements(client.app) as seen:
            r = await client.get("/v1/orders", headers=operator.auth)
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        assert reads_of(seen, "orders") == 1 and reads_of(seen, "listings") == 1, seen


# -- disputes --------------------------------------------------------------------------------


async def open_dispute(client: Any, who: Any, order: dict[str, Any], reason: str) -> dict[str, Any]:
    r = await client.post(f"/v1/orders/{order['id']}/disputes", json={"reason": reason}, headers=who.auth)
    assert r.status_code == 201, r.text
    return r.json()


async def test_the_disputes_each_party_may_act_on(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client, parties, operator = app.client, app.parties, app.operator
        regulator = await parties.staff("regulator")
        holder1, listing1 = await offer(client, parties, operator, plans=[ONE_TIME, FREE])
        holder2, listing2 = await offer(client, parties, operator, plans=[FREE])
        b1, b2 = await buyer(client, parties), await buyer(client, parties)
        outsider_buyer, outsider_holder = await buyer(client, parties), (await offer(client, parties, operator))[0]
        bought = await place(client, b1, listing1, "one_time")
        bought = (await pay_by_bank(client, operator, bought)).json()
        first = await open_dispute(client, b1, bought, "rows for 2025 only")
        second = await open_dispute(client, b2, await place(client, b2, listing2, "free"), "empty file")
        third = await open_dispute(client, b1, await place(client, b1, listing2, "free"), "wrong format")
        r = await client.post(f"/v1/disputes/{third['id']}/resolution", headers=operator.auth,
                              json={"decision": "refund", "reason": "agreed"})
        assert r.status_code == 200, r.text

        everything = await items(client, "/v1/disputes", operator)
        assert ids(everything) == [first["id"], second["id"], third["id"]]
        item = everything[0]
        assert (item["order_id"], item["buyer"], item["provider"], item["reason"], item["status"]) == \
            (bought["id"], b1.id, holder1.id, "rows for 2025 only", "open")
        assert item["listing"] == {"id": listing1["id"], "title": listing1["title"]}
        assert item["price"] == bought["price"] and item["payment_method"] == "bank_transfer"
        assert item["created_at"] == first["created_at"] and item["order_status"] == "active"
        for found in everything:  # the list says what the dispute's own page says
            assert found == (await client.get(f"/v1/disputes/{found['id']}", headers=operator.auth)).json()
        assert ids(await items(client, "/v1/disputes", regulator)) == ids(everything)
        assert ids(await items(client, "/v1/disputes", operator, status="open")) == [first["id"], second["id"]]
        assert ids(await items(client, "/v1/disputes", operator, status="refunded")) == [third["id"]]
        assert await items(client, "/v1/disputes", operator, status="rejected") == []
        assert ids(await items(client, "/v1/disputes", operator, limit=1)) == ids(everything)

        # Buyers and holders: the disputes of their own orders; anyone else none of them.
        assert ids(await items(client, "/v1/disputes", b1)) == [first["id"], third["id"]]
        assert ids(await items(client, "/v1/disputes", b1, status="open")) == [first["id"]]
        assert ids(await items(client, "/v1/disputes", b2)) == [second["id"]]
        assert ids(await items(client, "/v1/disputes", holder1)) == [first["id"]]
        assert ids(await items(client, "/v1/disputes", holder2)) == [second["id"], third["id"]]
        for outsider in (outsider_buyer, outsider_holder):
            assert await items(client, "/v1/disputes", outsider) == []
            for status in ("open", "refunded"):
                assert await items(client, "/v1/disputes", outsider, status=status) == []
            assert_problem(await client.get(f"/v1/disputes/{first['id']}", headers=outsider.auth), 404)

        assert_problem(await client.get("/v1/disputes"), 401)
        for bad, kind in (({"status": "closed"}, "validation-error"), ({"limit": 0}, "validation-error"),
                          ({"limit": 501}, "validation-error"), ({"cursor": "not-ours"}, "bad-cursor")):
            assert_problem(await client.get("/v1/disputes", params=bad, headers=operator.auth), 422, kind)

        with statements(client.app) as seen:
            r = await client.get("/v1/disputes", headers=operator.auth)
        assert r.status_code == 200 and len(r.json()["items"]) == 3
        assert reads_of(seen, "disputes") == 1 and reads_of(seen, "listings") == 1, seen
