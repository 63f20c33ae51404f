"""``Services``: everything a running market holds once, in one typed object.

Built in one place (``market.wiring.services``: by the app's lifespan, the CLI's
one-off commands, the demo and scripts) and reached through ``Ctx.services`` by the
services of every domain and through ``app.state.services`` by the HTTP edge. A
function that needs the ledger, the blob store or the card gateway says so by taking a
``Ctx`` or a ``Services``; nothing travels hidden on a session or in a module global.
"""

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.log import Log
from market.core.clock import Clock
from market.core.config import Settings
from market.core.db import PointReads, SessionMaker, is_sqlite, make_read_sessionmaker
from market.core.events import Events
from market.core.listener import PgListener
from market.core.memo import Memo
from market.sandbox.cache import LoadedTables

if TYPE_CHECKING:  # annotations only: core imports no domain and not the web edge at run time
    from market.payments.stripe_gateway import StripeGateway
    from market.storage import BlobStore, MasterKey
    from market.web.ratelimit import RateLimiter

__all__ = ["Services"]


class Services:
    """A plain class, not a dataclass: the web framework looks into the fields of a
    dataclass it injects (``Ctx``), and these are only annotated here."""

    def __init__(self, *, settings: Settings, clock: Clock, ledger: Log, events: Events, engine: AsyncEngine,
                 read_engine: AsyncEngine, sessionmaker: SessionMaker, read_sessionmaker: SessionMaker,
                 blobs: "BlobStore", master_key: "MasterKey | None", stripe: "StripeGateway | None",
                 limiter: "RateLimiter", credentials: Memo[Any], public_assets: Memo[bytes],
                 public_listings: Memo[Any], public_listing_items: Memo[bytes],
                 change_listener: PgListener | None = None,
                 sandbox: LoadedTables | None = None, point_read_engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.ledger = ledger
        self.events = events  # the subscribers of every domain event (market.wiring.subscribers)
        self.engine = engine
        self.read_engine = read_engine
        self.sessionmaker = sessionmaker
        self.read_sessionmaker = read_sessionmaker
        # Read sessions of the routes that read a few rows by key (``db.make_point_read_engine``).
        self.point_read_engine = point_read_engine
        # PostgreSQL: the shared pool in autocommit, with no BEGIN and ROLLBACK round trips
        # (its reads see each statement's own snapshot either way: READ COMMITTED).
        if point_read_engine is not None:
            self.point_read_sessionmaker = make_read_sessionmaker(point_read_engine)
        elif is_sqlite(read_engine):
            self.point_read_sessionmaker = read_sessionmaker
        else:
            self.point_read_sessionmaker = make_read_sessionmaker(
                read_engine.execution_options(isolation_level="AUTOCOMMIT"))
        self.point_reads = PointReads(read_engine)  # single reads by key on the hottest paths
        self.blobs = blobs
        self.master_key = master_key  # None in the CLI's one-off commands, which store no content
        self.stripe = stripe  # None when card payments are off
        self.limiter = limiter
        self.credentials = credentials  # what a process remembers of tokens (market.web.credentials)
        self.public_assets = public_assets
        self.public_listings = public_listings  # search answers, and the public part of every search
        self.public_listing_items = public_listing_items  # the JSON of listings as anyone sees them
        self.change_listener = change_listener  # PostgreSQL: empties the memos on other processes' changes
        self.sandbox = sandbox if sandbox is not None else LoadedTables(settings.sandbox_tables)
        self.touches: set[asyncio.Task[None]] = set()  # tokens' last use, written in the background

    def content_key(self) -> "MasterKey":
        """The master key that wraps every asset's data key."""
        if self.master_key is None:
            raise RuntimeError("this process was started without the master key")
        return self.master_key
