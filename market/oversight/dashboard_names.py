"""Names for the ids a dashboard page shows (``market.oversight.dashboard``): an account
by its name, an asset and a listing by their titles, an order by the title of what it
bought and its parties; each with a link.

A page gathers every id it shows and asks once (``lookup``): one query per kind of id
(accounts, assets, listings, orders), whatever the number of rows, never one per row.

Links (docs/oversight.md): where the dashboard has a page, to it; else to the JSON API.

- an account: its trades on the trades page (``/oversight/trades?provider=`` or
  ``?buyer=``, the side it has in what is shown, else the side its roles give); staff
  accounts have no trades, so no link;
- an order: its page (``/oversight/trades/{id}``);
- an asset: ``/v1/assets/{id}``; a listing: ``/v1/listings/{id}`` (public once
  registered or listed; the JSON API, the dashboard has no page of its own for them).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.listings.models import Listing
from market.registry.models import Asset
from market.trading.models import Order

__all__ = ["KINDS", "Names", "Ref", "account_ref", "asset_ref", "ids_in", "lookup"]

KINDS = {"acct_": "account", "ast_": "asset", "lst_": "listing", "ord_": "order"}
KIND_LABELS = {"account": "账户 account", "asset": "资产 asset", "listing": "挂牌 listing", "order": "订单 order"}
_CHUNK = 500  # ids in one IN (…): far below SQLite's and PostgreSQL's limits


@dataclass(frozen=True)
class Ref:
    """An id as a page shows it: ``name`` (None when nothing has this id) and ``href``."""

    id: str
    kind: str
    name: str | None
    href: str | None
    buyer: "Ref | None" = None  # an order's parties
    provider: "Ref | None" = None

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, "")


def kind_of(value: str) -> str | None:
    return next((kind for prefix, kind in KINDS.items() if value.startswith(prefix)), None)


def account_ref(account_id: str, name: str | None, roles: str = "", side: str | None = None) -> Ref:
    """An account and the trades page of the side it has (``side``) or its roles give."""
    owned = roles.split(",") if roles else []
    side = side or ("provider" if "provider" in owned else "buyer" if "buyer" in owned else None)
    href = f"/oversight/trades?{side}={quote(account_id, safe='')}" if side else None
    return Ref(account_id, "account", name, href)


def asset_ref(asset_id: str, title: str | None) -> Ref:
    return Ref(asset_id, "asset", title, f"/v1/assets/{asset_id}")


def listing_ref(listing_id: str, title: str | None) -> Ref:
    return Ref(listing_id, "listing", title, f"/v1/listings/{listing_id}")


def ids_in(value: Any) -> Iterator[str]:
    """Every id of a known kind in ``value`` (strings, lists and dicts, nested)."""
    if isinstance(value, str):
        if kind_of(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from ids_in(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from ids_in(item)


class Names:
    """The refs found by ``lookup``; an id it did not find is shown as itself."""

    def __init__(self, accounts: dict[str, tuple[str, str]], refs: dict[str, Ref]) -> None:
        self._accounts = accounts  # id → (name, roles)
        self._refs = refs

    def __call__(self, value: str | None, side: str | None = None) -> Ref | None:
        """The ref of ``value`` (None for None); ``side`` (``buyer``/``provider``) picks an
        account's link."""
        if not value:
            return None
        if value in self._accounts:
            name, roles = self._accounts[value]
            return account_ref(value, name, roles, side)
        found = self._refs.get(value)
        if found is not None:
            return found
        kind = kind_of(value) or "other"
        return Ref(value, kind, None, None)

    def label(self, value: str | None) -> str:
        ref = self(value)
        return ref.label if ref else "—"


def _chunks(values: set[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i:i + _CHUNK]


async def lookup(db: AsyncSession, values: Iterable[str | None]) -> Names:
    """The names of every id in ``values``: one query per kind present (per 500 ids)."""
    wanted: dict[str, set[str]] = {kind: set() for kind in KINDS.values()}
    for value in values:
        kind = kind_of(value) if value else None
        if kind is not None and value:
            wanted[kind].add(value)
    accounts: dict[str, tuple[str, str]] = {}
    refs: dict[str, Ref] = {}
    for chunk in _chunks(wanted["account"]):
        rows = (await db.execute(select(col(Account.id), col(Account.name), col(Account.roles))
                                 .where(col(Account.id).in_(chunk)))).all()
        accounts.update({row[0]: (row[1], row[2]) for row in rows})
    for chunk in _chunks(wanted["asset"]):
        rows = (await db.execute(select(col(Asset.id), col(Asset.title)).where(col(Asset.id).in_(chunk)))).all()
        refs.update({row[0]: asset_ref(row[0], row[1]) for row in rows})
    for chunk in _chunks(wanted["listing"]):
        rows = (await db.execute(select(col(Listing.id), col(Listing.title))
                                 .where(col(Listing.id).in_(chunk)))).all()
        refs.update({row[0]: listing_ref(row[0], row[1]) for row in rows})
    buyer, provider = aliased(Account, name="buyer"), aliased(Account, name="provider")
    for chunk in _chunks(wanted["order"]):
        rows = (await db.execute(
            select(col(Order.id), col(Asset.title), col(Order.buyer_id), col(buyer.name), col(Order.provider_id),
                   col(provider.name))
            .join(Asset, col(Asset.id) == col(Order.asset_id))
            .join(buyer, col(buyer.id) == col(Order.buyer_id))
            .join(provider, col(provider.id) == col(Order.provider_id))
            .where(col(Order.id).in_(chunk)))).all()
        for order_id, title, buyer_id, buyer_name, provider_id, provider_name in rows:
            refs[order_id] = Ref(order_id, "order", title, f"/oversight/trades/{order_id}",
                                 buyer=account_ref(buyer_id, buyer_name, side="buyer"),
                                 provider=account_ref(provider_id, provider_name, side="provider"))
    return Names(accounts, refs)
