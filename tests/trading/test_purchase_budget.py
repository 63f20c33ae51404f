"""The statements a free purchase costs: a budget, so the write path does not grow back
(docs/performance.md). Counted with the background tasks off, on every engine of the app."""

import traceback
from typing import Any

from tests.registry_support import own_app
from tests.statements import counted
from tests.trading.support import FREE, buyer, offer, place

# POST /v1/orders of a free plan: the listing with its asset and whether it is orderable
# (one query; the buyer is the request's credentials); the order, its placed document and
# entry, ready; the contract's revision and both parties (one query), its document and
# entry, settled; the day, day-total and month statistics, the day's and month's parties;
# the outbox row (the answer names the listing as placing read it). PostgreSQL: the
# listing and asset are read with the share locks on them and the holder, and whether it
# is orderable in a statement of its own, once the locks are held; the five statistics
# writes are one statement (data-modifying CTEs).
PURCHASE_STATEMENTS = {"sqlite": 15, "postgresql": 12}
# GET /v1/orders/{id}/contract: the order and the contract's ledger index.
CONTRACT_STATEMENTS = 2


def services_dialect(client: Any) -> str:
    name: str = client.app.state.services.engine.dialect.name
    return name


async def free_purchase(app: Any) -> tuple[Any, dict[str, Any], Any]:
    """A free listing offered on ``app`` and a buyer's settled order of it: (the listing,
    the order, the buyer)."""
    _, listing = await offer(app.client, app.parties, app.operator, plans=[FREE])
    who = await buyer(app.client, app.parties)
    return listing, await place(app.client, who, listing), who


async def test_a_free_purchase_stays_within_its_statement_budget(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        listing, first, who = await free_purchase(app)  # statement caches warm
        assert (await client.get(f"/v1/orders/{first['id']}/contract", headers=who.auth)).status_code == 200
        with counted(client.app.state.services) as seen:
            order = await place(client, who, listing)
            placed, placed_compiled = list(seen), list(seen.compiled)
            seen.clear()
            seen.compiled.clear()
            r = await client.get(f"/v1/orders/{order['id']}/contract", headers=who.auth)
            assert r.status_code == 200, r.text
            fetched = list(seen)
        assert order["status"] == "active"
        budget = PURCHASE_STATEMENTS[services_dialect(client)]
        assert len(placed) <= budget, f"{len(placed)} statements: {placed}"
        assert 0 < len(fetched) <= CONTRACT_STATEMENTS, f"{len(fetched)} statements: {fetched}"
        # Each from SQLAlchemy's statement cache: none is compiled anew per purchase.
        assert placed_compiled == [] and seen.compiled == [], placed_compiled + seen.compiled


async def test_a_point_read_route_needs_no_hand_off_nor_begin(databases: Any, tmp_path: Any,
                                                              monkeypatch: Any) -> None:
    """A point-read route (``POINT_READS``: the contract, one order): on SQLite its
    statements run in the event loop's thread, with no hand-off to a reader's thread; the
    answers are those a pooled reader gives. PostgreSQL reads them in autocommit: no BEGIN
    or ROLLBACK round trip, and the answers every other GET's session gives."""
    from market.core.sqlite_connections import InLoopConnection, OneHopConnection

    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        services = client.app.state.services
        _, order, who = await free_purchase(app)
        handed: list[Any] = []
        real = OneHopConnection._execute

        async def execute(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            # A hand-off to a reader's thread by the routes' handlers (not by background work).
            stack = "".join(traceback.format_stack())
            if not isinstance(self, InLoopConnection) and "market/trading/routes.py" in stack:
                handed.append(stack)
            return await real(self, fn, *args, **kwargs)

        monkeypatch.setattr(OneHopConnection, "_execute", execute)
        begun: list[str] = []  # PostgreSQL: transactions begun on asyncpg by the routes' handlers
        if services.point_read_engine is None:
            from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

            real_begin = AsyncAdapt_asyncpg_connection._start_transaction

            async def start_transaction(self: Any) -> None:
                if self.isolation_level != "autocommit" and "market/trading/routes.py" in "".join(
                        traceback.format_stack()):
                    begun.append("BEGIN")
                await real_begin(self)

            monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "_start_transaction", start_transaction)
        paths = [f"/v1/orders/{order['id']}/contract", f"/v1/orders/{order['id']}"]
        with counted(services) as seen:
            answers = [await client.get(path, headers=who.auth) for path in paths]
        assert [r.status_code for r in answers] == [200, 200] and seen
        assert answers[1].json()["status"] == "active"
        if services.point_read_engine is not None:
            assert handed == [], handed[0]  # the stack of the first
            # The same answers from the pooled readers, as a route without the option reads.
            services.point_read_sessionmaker = services.read_sessionmaker
            assert [(await client.get(path, headers=who.auth)).json() for path in paths] == \
                [r.json() for r in answers]
            assert handed
        else:  # PostgreSQL: in autocommit, no BEGIN (nor ROLLBACK) round trip; the same answers
            assert begun == []
            services.point_read_sessionmaker = services.read_sessionmaker
            assert [(await client.get(path, headers=who.auth)).json() for path in paths] == \
                [r.json() for r in answers]
            assert begun == ["BEGIN", "BEGIN"]
        # Another buyer is told there is no such order, as before.
        other = await buyer(client, app.parties)
        assert (await client.get(paths[0], headers=other.auth)).status_code == 404


async def test_an_integrated_contract_is_proved_by_the_checkpoint_in_memory(databases: Any, tmp_path: Any) -> None:
    """Once the contract's entry is integrated, its bundle takes the checkpoint this process
    holds (no reads of the checkpoint and its cosignatures) when that covers the entry and
    is fresh; a stale one is read anew. Both bundles verify, against the same checkpoint."""
    from ledger.verify import verify_bundle
    from market.wiring.tasks import integrate_once

    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        services = client.app.state.services
        _, order, who = await free_purchase(app)
        path = f"/v1/orders/{order['id']}/contract"
        assert (await client.get(path, headers=who.auth)).json()["ledger"]["index"] is None  # pending
        while client.blocking_portal.call(integrate_once, services):  # and the checkpoint remembered
            pass
        vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
        with counted(services) as seen:
            remembered = (await client.get(path, headers=who.auth)).json()
        # The order, its entry's index and the proof's newest tiles: neither the checkpoint
        # nor the log's size read again.
        assert not any("ledger_checkpoints" in s or "ledger_cosignatures" in s for s in seen), seen
        assert len(seen) <= CONTRACT_STATEMENTS + 1, seen
        services.ledger._latest_at = float("-inf")  # older than any bundle takes
        with counted(services) as seen:
            read = (await client.get(path, headers=who.auth)).json()
        assert len(seen) > CONTRACT_STATEMENTS and any("ledger_checkpoints" in s for s in seen), seen
        for bundle in (remembered, read):
            assert bundle["ledger"]["index"] is not None
            assert verify_bundle(bundle, vkey).status == "valid"
        assert remembered == read
