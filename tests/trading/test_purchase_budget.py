"""The statements a free purchase costs: a budget, so the write path does not grow back
(docs/performance.md). Counted with the background tasks off, on every engine of the app."""

from typing import Any

from tests.conftest import backend
from tests.registry_support import own_app
from tests.statements import counted
from tests.trading.support import FREE, buyer, offer, place

# POST /v1/orders of a free plan: caller, listing, asset, orderable; the order, its placed
# document and entry, ready; the contract's revision and provider, its document and entry,
# settled; the day, day-total and month statistics, the day's and month's parties; the
# outbox row; the listing's title for the answer. PostgreSQL: the share locks on the
# listing, its asset and holder, and the listing read again under them.
PURCHASE_STATEMENTS = 22 if backend() == "postgresql" else 20
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
