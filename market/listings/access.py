"""Who may see and order what (docs/API.md "Listings").

- A published listing is readable by id by anyone, whatever its state: a buyer must be
  able to see what it bought. Its ``orderable`` says whether it can be ordered now.
- A listing is **orderable** when it is active and not frozen, its holder still holds
  the asset, the asset is not frozen, its registration stands (a change under review
  leaves it standing) with the operation right (经营权), and the holder is not
  suspended. ``orderable_clause`` is the one definition: reads evaluate it, and search
  stores it (``listing_docs.listed``) whenever a listing, its asset or its holder moves.
- Plans: a private plan is shown to its named buyers, the holder and staff only.
"""

import functools
import json
from typing import Any, NamedTuple, Protocol

from sqlalchemy import and_, bindparam, case, exists, false, literal_column, or_, select, true
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.db import run
from market.core.errors import Forbidden, NotFound
from market.core.visibility import load_prepared, visible_query
from market.listings.models import Listing
from market.listings.schemas import without_buyers
from market.listings.states import ListingStatus
from market.registry.models import Asset, AssetRevision
from market.registry.states import UNDER_REVIEW, AssetStatus
from market.web.auth import Caller


def operation_right_standing() -> Any:
    """SQL, correlated with ``assets``: the standing registration grants the operation right."""
    return exists().where(
        col(AssetRevision.asset_id) == col(Asset.id), col(AssetRevision.revision) == col(Asset.registered_revision),
        # The pattern in the SQL itself: SQLite prepares a statement again on every run
        # when a LIKE's pattern is a bound parameter (~80 µs a time).
        col(AssetRevision.rights).like(literal_column("""'%"operation"%'""")),
    )


def asset_listable() -> Any:
    """SQL over ``assets``: a registration stands, unfrozen, with the operation right."""
    return and_(
        col(Asset.frozen) == false(),
        # The statuses compared one by one, not with IN: an IN list is an expanding
        # parameter, which SQLAlchemy renders into the SQL again on every execution.
        or_(col(Asset.status) == AssetStatus.registered,
            and_(col(Asset.registered_revision) > 0, or_(*(col(Asset.status) == s.value for s in sorted(UNDER_REVIEW))))),
        operation_right_standing(),
    )


def orderable_clause() -> Any:
    """SQL, correlated with ``listings``: the listing can be ordered now."""
    # Correlated with ``listings`` alone: a query that also reads ``assets`` (``_to_order``)
    # keeps this test's own.
    asset_ok = exists().where(col(Asset.id) == col(Listing.asset_id), col(Asset.provider_id) == col(Listing.provider_id),
                              asset_listable()).correlate(Listing)
    holder_ok = exists().where(col(Account.id) == col(Listing.provider_id), col(Account.suspended) == false()) \
        .correlate(Listing)
    return and_(col(Listing.status) == ListingStatus.active, col(Listing.frozen) == false(), asset_ok, holder_ok)


@functools.cache
def _orderable() -> Any:
    # Built once (on first use: the models' tables must all be defined): a statement built
    # per call walked its whole clause for a cache key each time.
    return select(col(Listing.id)).where(col(Listing.id) == bindparam("listing"), orderable_clause())


async def is_orderable(session: AsyncSession, listing_id: str) -> bool:
    found = await run(session, _orderable(), {"listing": listing_id})
    return found.scalar() is not None


class Held(Protocol):
    """What ``is_insider`` and ``visible_plans`` read of a listing."""

    @property
    def provider_id(self) -> str: ...

    @property
    def plans(self) -> str: ...


def is_insider(listing: Held, caller: Caller | None) -> bool:
    return caller is not None and (caller.is_staff or caller.id == listing.provider_id)


def visible_plans(listing: Held, caller: Caller | None) -> list[dict[str, Any]]:
    """The current plans the caller may see (and so order). Only the holder and staff see
    whom a private plan is for; its buyers see that it is private (``without_buyers``)."""
    plans: list[dict[str, Any]] = json.loads(listing.plans)
    if is_insider(listing, caller):
        return plans
    return [without_buyers(p) for p in plans
            if not p.get("private_to") or (caller is not None and caller.id in p["private_to"])]


@functools.cache
def _listing_query() -> Any:
    return visible_query(Listing, true())


async def load(session: AsyncSession, listing_id: str) -> Listing:
    """Any published listing (404 for an unknown id)."""
    listing: Listing = await load_prepared(session, _listing_query(), {"id": listing_id}, "listing")
    return listing


async def load_for_holder(session: AsyncSession, listing_id: str, caller: Caller) -> Listing:
    """The listing if the caller published it: 403 for anyone else."""
    listing = await load(session, listing_id)
    if listing.provider_id != caller.id:
        raise Forbidden("only the listing's holder may do this", kind="not-owner")
    return listing


class ListingToOrder(NamedTuple):
    """What placing an order reads of a listing (``load_to_order``)."""

    id: str
    provider_id: str
    asset_id: str
    title: str
    terms_version: int
    terms_sha256: str
    licence: str
    plans: str
    approval_required: bool


class AssetToOrder(NamedTuple):
    """What placing an order reads of the listing's asset."""

    id: str
    grade: str
    export_allowed: bool


_LISTING_TO_ORDER = tuple(col(getattr(Listing, name)) for name in ListingToOrder._fields)
_ASSET_TO_ORDER = tuple(col(getattr(Asset, name)) for name in AssetToOrder._fields)


async def load_to_order(session: AsyncSession, listing_id: str) -> tuple[ListingToOrder, AssetToOrder, bool]:
    """The listing's and its asset's terms (404 for an unknown id), and whether it is
    orderable now: the columns an order needs, not the ORM's loading of both rows.

    SQLite: one statement (its writer holds the one write lock: nothing moves meanwhile).
    PostgreSQL: the listing and asset read and held as ``hold`` holds them, then
    ``is_orderable`` in a statement of its own, whose snapshot is taken once the locks
    are (anything committed while this read waited for them is seen)."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    rows = (await run(session, _to_order() if sqlite else _held_to_order(), {"listing": listing_id})).all()
    if not rows:
        raise NotFound(f"no listing {listing_id}")
    row, split = tuple(rows[0]), len(ListingToOrder._fields)
    listing, asset = ListingToOrder(*row[:split]), AssetToOrder(*row[split:split + len(AssetToOrder._fields)])
    orderable = bool(row[-1]) if sqlite else await is_orderable(session, listing_id)
    return listing, asset, orderable


async def hold(session: AsyncSession, listing: Listing) -> Asset | None:
    """Keep the listing, its asset and its holder as they are until this transaction ends:
    on PostgreSQL a share lock (concurrent orders proceed; a pause, freeze, transfer or
    suspension waits for them), the listing and its asset read again under it in the same
    statement (``listing`` is updated in place; the asset is returned). SQLite runs one
    writer at a time: nothing to do there, and None is returned."""
    if session.get_bind().dialect.name == "sqlite":
        return None
    row = (await session.execute(_held(), {"listing": listing.id})).one()
    return row[1]


@functools.cache
def _to_order() -> Any:
    orderable = case((orderable_clause(), true()), else_=false())
    return (select(*_LISTING_TO_ORDER, *_ASSET_TO_ORDER, orderable).join(Asset, col(Asset.id) == col(Listing.asset_id))
            .where(col(Listing.id) == bindparam("listing")))


@functools.cache
def _held_to_order() -> Any:
    # FOR SHARE without OF: the listing, its asset and its holder's account, as ``_held``.
    return (select(*_LISTING_TO_ORDER, *_ASSET_TO_ORDER).join(Asset, col(Asset.id) == col(Listing.asset_id))
            .join(Account, col(Account.id) == col(Listing.provider_id)).where(col(Listing.id) == bindparam("listing"))
            .with_for_update(read=True))


@functools.cache
def _held() -> Any:
    return (select(Listing, Asset).join(Asset, col(Asset.id) == col(Listing.asset_id))
            .join(Account, col(Account.id) == col(Listing.provider_id)).where(col(Listing.id) == bindparam("listing"))
            .with_for_update(read=True).execution_options(populate_existing=True))
