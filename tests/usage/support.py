"""A registered table to query: a provider, its CSV content, the table description, a listing."""

import random
from typing import Any

from tests.conftest import Parties, Party
from tests.listings.support import publish
from tests.registry_support import Signer, draft, provider, submit, upload
from tests.trading.support import buyer, plan_of

COLUMNS = [{"name": "rider", "type": "text", "role": "entity"},
           {"name": "district", "type": "text", "role": "dimension"},
           {"name": "day", "type": "date", "role": "dimension"},
           {"name": "fare", "type": "integer", "role": "measure", "bounds": [0, 20]},
           {"name": "card", "type": "text", "role": "key"},
           {"name": "phone", "type": "text", "role": "hidden"}]
DISTRICTS = ["福田", "南山", "罗湖", "宝安"]


def trips(n: int = 400, seed: int | None = None) -> list[tuple[Any, ...]]:
    """Rows of a bus-fare table: 40 riders; 宝安 has only 3 riders (a small group). Fares are random
    unless ``seed`` is given (each table's content is then new: the registry flags claimed content)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        district = DISTRICTS[i % 3] if i % 20 else "宝安"
        rider = f"r{i % 40:02d}" if district != "宝安" else f"r{i % 3:02d}"
        rows.append((rider, district, f"2026-0{1 + i % 3}-{1 + i % 28:02d}", rng.randint(1, 12), f"C{i % 50:04d}",
                     f"1380000{i:04d}"))
    return rows


def csv_of(rows: list[tuple[Any, ...]]) -> bytes:
    return ("rider,district,day,fare,card,phone\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode()


async def table_asset(client: Any, parties: Parties, operator: Party, rows: list[tuple[Any, ...]] | None = None,
                      **description: Any) -> tuple[Signer, dict[str, Any], list[tuple[Any, ...]]]:
    holder = await provider(client, parties)
    rows = trips() if rows is None else rows
    asset = await draft(client, holder, format="csv")
    await upload(client, holder, asset["id"], csv_of(rows))
    await submit(client, holder, asset["id"], "holding,use,operation")
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200 and r.json()["status"] == "registered", r.text
    body = {"format": "csv", "columns": COLUMNS, "min_group": 5, **description}
    r = await client.put(f"/v1/assets/{asset['id']}/table", json=body, headers=holder.auth)
    assert r.status_code == 201, r.text
    return holder, r.json(), rows


SANDBOX = {"model": "one_time", "price": {"amount": 30_000, "currency": "CNY"}, "delivery": "sandbox"}
METERED = {"model": "metered", "price": {"amount": 200, "currency": "CNY"}, "delivery": "api", "quota": 25,
           "period_days": 30}


async def sandbox_order(client: Any, parties: Parties, operator: Party, plans: list[dict[str, Any]] | None = None,
                        **description: Any) -> dict[str, Any]:
    """An active sandbox (or, with ``plans``, other) order on a fresh table: everything the tests need."""
    holder, table, rows = await table_asset(client, parties, operator, **description)
    listing = await publish(client, holder, table["asset_id"], plans=plans or [SANDBOX])
    who = await buyer(client, parties)
    model = (plans or [SANDBOX])[0]["model"]
    method = {"metered": "postpaid", "free": "free"}.get(model, "bank_transfer")
    r = await client.post("/v1/orders", headers=who.auth, json={
        "listing_id": listing["id"], "plan_id": plan_of(listing, model), "purpose": "research",
        "payment_method": method})
    assert r.status_code == 201, r.text
    order = r.json()
    if method == "bank_transfer":
        r = await client.post(f"/v1/orders/{order['id']}/payment", headers=operator.auth,
                              json={"reference": "CMB-1", "amount": order["price"]})
        assert r.status_code == 200, r.text
        order = r.json()
    assert order["status"] == "active", order
    return {"holder": holder, "table": table, "rows": rows, "listing": listing, "buyer": who, "order": order}


async def query(client: Any, bought: dict[str, Any], sql: str, **extra: Any) -> Any:
    return await client.post(f"/v1/orders/{bought['order']['id']}/queries", json={"sql": sql, **extra},
                             headers=bought["buyer"].auth)
