"""Building the market's ``Services``: the one place where it is wired.

``open_services`` makes what a process holds once — engines and session makers, the
ledger, the blob store and master key, the card gateway, the memos and their change
listener, the rate limiter — and the event registry with every subscriber
(``market.wiring.subscribers``). The app's lifespan, the CLI's one-off commands, the
demo and scripts all build their services here, so each runs with the same reactions.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ledger.log import Log
from market.core import db
from market.core.clock import Clock
from market.core.config import Settings
from market.core.events import Events
from market.core.keycheck import refuse_new_keys
from market.core.keys import init_ledger_key
from market.core.listener import PgListener, asyncpg_dsn
from market.core.memo import Memo, sqlite_epochs
from market.core.services import Services
from market.storage import MasterKey, open_blob_store
from market.web.credentials import credential_memo
from market.web.ratelimit import limiter_from
from market.wiring.subscribers import subscribe_all

if TYPE_CHECKING:
    from market.payments.stripe_gateway import StripeGateway

__all__ = ["close_services", "events", "open_services", "services"]


def events() -> Events:
    """An event registry with every subscriber of the market."""
    registry = Events()
    subscribe_all(registry)
    return registry


async def open_services(settings: Settings, *, clock: Clock | None = None, content: bool = True,
                        listen: bool = True) -> Services:
    """The services of a process. The database must already be migrated. Keys are made
    only for a database that needs no existing ones (``market.core.keycheck``);
    ``content=False`` (commands that store no content) leaves the master key unread and
    uncreated; ``listen`` starts the PostgreSQL change listener that empties the memos."""
    engine, read_engine = db.make_engines(settings.sqlalchemy_url)
    try:
        await refuse_new_keys(read_engine, settings.keys_dir, settings.blobs_dir)
        private_key, _ = init_ledger_key(settings.keys_dir)
        master_key = MasterKey.load_or_create(settings.keys_dir / "master.key") if content else None
    except BaseException:
        await engine.dispose()
        await read_engine.dispose()
        raise
    epochs = sqlite_epochs(settings.sqlalchemy_url) if db.is_sqlite(engine) else None
    services = Services(
        settings=settings,
        clock=clock or Clock(),
        ledger=Log(private_key, settings.ledger_origin, tile_memory=settings.ledger_tile_memory, run=db.run),
        events=events(),
        engine=engine,
        read_engine=read_engine,
        sessionmaker=db.make_sessionmaker(engine),
        read_sessionmaker=db.make_read_sessionmaker(read_engine),
        point_read_engine=db.make_point_read_engine(settings.sqlalchemy_url),
        blobs=open_blob_store(settings.blob_store, settings.s3_endpoint_url, settings.blobs_dir),
        master_key=master_key,
        stripe=_stripe(settings),
        limiter=limiter_from(settings),
        credentials=credential_memo(epochs),
        public_assets=Memo("assets", epochs=epochs, capacity=128),
        public_listings=Memo("assets", epochs=epochs, capacity=max(settings.search_memory, 1)),
        # A page's listings: up to 50 a search, and many searches show the same ones.
        public_listing_items=Memo("assets", epochs=epochs, capacity=16 * max(settings.search_memory, 1)),
    )
    if listen and not db.is_sqlite(engine):
        listener = PgListener(asyncpg_dsn(settings.sqlalchemy_url),
                              [services.credentials, services.public_assets, services.public_listings,
                               services.public_listing_items])
        await listener.start()
        services.change_listener = listener
    return services


async def close_services(services: Services) -> None:
    """Stop what ``open_services`` started: tokens' last-use writes, the listener, the
    limiter's and gateway's connections, the engines."""
    for task in list(services.touches):
        task.cancel()
    await asyncio.gather(*services.touches, return_exceptions=True)
    if services.change_listener is not None:
        await services.change_listener.stop()
    await services.limiter.counter.close()
    if services.stripe is not None:
        await services.stripe.close()
    await services.point_reads.close()
    await services.engine.dispose()
    await services.read_engine.dispose()
    if services.point_read_engine is not None:
        await services.point_read_engine.dispose()


@contextlib.asynccontextmanager
async def services(settings: Settings, *, clock: Clock | None = None, content: bool = True,
                   listen: bool = True) -> AsyncIterator[Services]:
    """``open_services`` ... ``close_services`` around a block (scripts, the CLI, tests)."""
    opened = await open_services(settings, clock=clock, content=content, listen=listen)
    try:
        yield opened
    finally:
        await close_services(opened)


def _stripe(settings: Settings) -> "StripeGateway | None":
    """The card gateway, or None when Stripe is off (no ``MARKET_STRIPE_SECRET_KEY``)."""
    if not getattr(settings, "stripe_secret_key", ""):
        return None
    from market.payments.stripe_gateway import stripe_gateway  # the Stripe library only when it is used

    return stripe_gateway(settings)
