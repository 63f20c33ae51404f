"""The statements a free purchase costs: a budget, so the write path does not grow back
(docs/performance.md). Counted with the background tasks off, on every engine of the app."""

from typing import Any

from tests.registry_support import own_app
from tests.statements import counted
from tests.trading.support import FREE, buyer, offer, place

# POST /v1/orders of a free plan: listing, asset, orderable (the buyer is the request's
# credentials); the order, its placed document and entry, ready; the contract's revision
# and both parties (one query), its document and entry, settled; the day, day-total and
# month statistics, the day's and month's parties; the outbox row (the answer names the
# listing as placing read it). PostgreSQL: the share locks on the listing, its asset and
# holder, which read the listing and asset again in the same statement, in place of the
# asset's read.
PURCHASE_STATEMENTS = 18
# GET /v1/orders/{id}/contract: the order and the contract's ledger index.
CONTRACT_STATEMENTS = 2


async def test_a_free_purchase_stays_within_its_statement_budget(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        _, listing = await offer(client, app.parties, app.operator, plans=[FREE])
        who = await buyer(client, app.parties)
        await place(client, who, listing)  # statement caches warm
        with counted(client.app.state.services) as seen:
            order = await place(client, who, listing)
            placed = list(seen)
            seen.clear()
            r = await client.get(f"/v1/orders/{order['id']}/contract", headers=who.auth)
            assert r.status_code == 200, r.text
            fetched = list(seen)
        assert order["status"] == "active"
        assert len(placed) <= PURCHASE_STATEMENTS, f"{len(placed)} statements: {placed}"
        assert len(fetched) <= CONTRACT_STATEMENTS, f"{len(fetched)} statements: {fetched}"
