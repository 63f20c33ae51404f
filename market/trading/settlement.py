"""Settlement (清结算): payment confirmed → the contract (交易凭证) written and the order
active, in one transaction; payment failures; expiry; refunds. Never commits.

Settlement re-checks, in its own transaction and under the locks ordering takes, that
the listing is still orderable and the order's provider still its holder (DESIGN §2,
invariant 8: no money moves for what a regulator stopped); an order that cannot be
settled is ended with the reason, and money received for it goes back (``returns``).

The contract is the document of the ``trade.settled`` entry (docs/LEDGER.md §6): its salted
hash is on the public log, and the parties get it as a bundle that verifies offline
with ``python -m ledger verify-bundle``.
"""

import functools
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import canonical as canonical_entry
from ledger.log import Log
from market.accounts.models import Account, AccountKey
from market.accounts.schemas import Role
from market.core import signing
from market.core.context import Ctx
from market.core.db import run, table_of
from market.core.errors import Conflict, InvalidTransition, Unprocessable
from market.core.events import OrderSettled
from market.core.money import Money, human
from market.core.types import rfc3339
from market.listings import access as listing_access
from market.listings.models import Listing
from market.listings.schemas import without_buyers
from market.listings.states import ListingStatus
from market.registry.assets import commitment_of
from market.registry.certificates import bundle, holder_of
from market.registry.models import Asset, AssetRevision
from market.registry.states import AssetStatus
from market.trading import access, documents, notices, returns
from market.trading.models import Order
from market.trading.read import payment_reference, same_reference
from market.trading.states import ORDER, UNPAID, OrderStatus

CONTRACT_TYPE = "data-trade-contract"


def access_days(order: Order) -> int:
    plan = json.loads(order.plan)
    return int(plan["period_days"]) if plan["model"] == "subscription" else int(json.loads(order.licence)["term_days"])


class _Revision(NamedTuple):
    sha256: str
    size: int
    merkle_root: str
    chunk_size: int
    revision: int


class _Party(NamedTuple):
    id: str
    kind: str
    name: str
    uscc: str | None


class _Asset(NamedTuple):
    id: str
    title: str
    category: str
    grade: str
    registration_number: str | None


@functools.cache
def _contract_parts() -> Any:
    """The asset, its registered revision's commitment and both parties as a contract
    names them, in one statement (Core: the ORM's loading of four whole rows cost ~1.3 ms)."""
    asset, rev, accounts = table_of(Asset), table_of(AssetRevision), table_of(Account)
    buyer, provider = accounts.alias("buyer"), accounts.alias("provider")
    return select(
        *(asset.c[name] for name in _Asset._fields[1:]),
        rev.c.sha256, rev.c.size, rev.c.merkle_root, rev.c.chunk_size, rev.c.revision,
        *(party.c[name].label(f"{party.name}_{name}") for party in (buyer, provider) for name in ("kind", "name", "uscc")),
    ).select_from(
        asset.join(rev, and_(rev.c.asset_id == asset.c.id, rev.c.revision == asset.c.registered_revision))
        .join(buyer, buyer.c.id == bindparam("buyer")).join(provider, provider.c.id == bindparam("provider"))
    ).where(asset.c.id == bindparam("asset"))


async def contract_document(session: AsyncSession, ctx: Ctx, order: Order, reference: str) -> dict[str, Any]:
    parts = (await run(session, _contract_parts(), {"asset": order.asset_id, "buyer": order.buyer_id,
                                                    "provider": order.provider_id})).all()
    assert parts, f"the asset of {order.id}, its registered revision and the order's parties exist"
    row = tuple(parts[0])  # the direct path's rows are plain tuples: by position
    asset, rev = _Asset(order.asset_id, *row[:4]), _Revision(*row[4:9])
    buyer, provider = _Party(order.buyer_id, *row[9:12]), _Party(order.provider_id, *row[12:15])
    signature = None
    if order.buyer_signature is not None:
        key = await session.get(AccountKey, order.buyer_key_id)
        signature = {"alg": "Ed25519", "key_id": order.buyer_key_id, "public_key": key.public_key if key else None,
                     "value": order.buyer_signature, "document": json.loads(order.order_document or "{}")}
    expires = ctx.now + timedelta(days=access_days(order))
    money = {"currency": order.currency}
    return {
        "type": CONTRACT_TYPE, "v": 1, "market": ctx.market, "order": order.id,
        "buyer": holder_of(buyer), "provider": holder_of(provider),
        "asset": {"id": asset.id, "title": asset.title, "category": asset.category, "grade": asset.grade},
        "registration_number": asset.registration_number, "commitment": commitment_of(rev),
        "listing": order.listing_id, "plan": without_buyers(json.loads(order.plan)),
        "licence": json.loads(order.licence),
        "terms_version": order.terms_version, "terms_sha256": order.terms_sha256, "purpose": order.purpose,
        "price": {"amount": order.price, **money}, "fee": {"amount": order.fee, **money},
        "provider_share": {"amount": order.provider_share, **money},
        "payment": {"method": order.payment_method, "reference": reference},
        "settled_at": rfc3339(ctx.now), "access": {"from": rfc3339(ctx.now), "until": rfc3339(expires)},
        "buyer_signature": signature,
    }


class NotSettleable(Conflict):
    kind, title = "not-settleable", "The order can no longer be settled"


@dataclass
class Ended(Exception):
    """The order was ended (and any money received recorded as going back) in the
    caller's transaction: commit it, then answer ``problem``."""

    problem: NotSettleable


async def why_unsettleable(session: AsyncSession, order: Order) -> str | None:
    """Why ``order`` cannot be settled now (said to its buyer and holder), or None.

    Holds the listing, its asset and its holder as placing an order does (share locks on
    PostgreSQL, taken before the order row is written), then reads them afresh: a
    freeze, revocation, suspension or transfer committed before is seen, and one that
    comes after waits for this transaction. The rule is the listing's ``orderable`` and
    the order's provider still being the listing's holder."""
    listing = await session.get_one(Listing, order.listing_id)
    await listing_access.hold(session, listing)
    listing = await session.get_one(Listing, order.listing_id, populate_existing=True)
    asset = await session.get_one(Asset, order.asset_id, populate_existing=True)
    await session.get_one(Order, order.id, populate_existing=True)  # ``order`` as it is now
    if not order.provider_id == listing.provider_id == asset.provider_id:
        return "the asset changed hands: the order's provider no longer holds it"
    if asset.status == AssetStatus.revoked:
        return f"the registration {asset.registration_number} was revoked by the regulator"
    if asset.frozen:
        return "the asset is frozen by the regulator"
    if listing.frozen:
        return "the listing is frozen by the regulator"
    if (await session.get_one(Account, listing.provider_id, populate_existing=True)).suspended:
        return "the holder's account is suspended by the regulator"
    if listing.status != ListingStatus.active:
        return f"the listing is {listing.status}"
    if not await listing_access.is_orderable(session, listing.id):
        return "the asset's registration no longer stands with the operation right"
    return None


async def end_unsettled(session: AsyncSession, ctx: Ctx, order: Order, why: str, cause: str) -> None:
    """End an unpaid order the market can no longer settle: ``cancelled`` with ``why``
    as its ``status_reason``; a card order's PaymentIntent is left for the gateway to
    cancel after the commit (``intent_to_cancel``)."""
    values: dict[str, Any] = {"status_reason": why, "updated_at": ctx.now}
    if order.payment_method == "stripe" and order.intent_id is not None:
        values["intent_to_cancel"] = order.intent_id
    await ORDER.move(session, order, "cancel", ctx, **values)
    await documents.record(session, ctx, "trade.cancelled", f"order:{order.id}",
                           {"order": order.id, "by": "market", "cause": cause})


async def end_with_listing(session: AsyncSession, ctx: Ctx, listing: Listing) -> int:
    """The listing was delisted (by its holder, or by the market because its asset changed
    hands, was cancelled or revoked): its unpaid orders end with it, in that transaction,
    so nobody but the asset's current holder approves or is paid. Returns how many."""
    unpaid = (await session.execute(select(Order).where(
        col(Order.listing_id) == listing.id, col(Order.status).in_([s.value for s in UNPAID]))
        .order_by(col(Order.id)))).scalars().all()
    asset = await session.get_one(Asset, listing.asset_id)
    why = _delisted_because(asset, listing, by_market=ctx.caller is None)
    for order in unpaid:
        await end_unsettled(session, ctx, order, why, cause="listing-delisted")
    return len(unpaid)


def _delisted_because(asset: Asset, listing: Listing, by_market: bool) -> str:
    if not by_market:
        return "the holder delisted the listing"
    if asset.status == AssetStatus.revoked:
        return f"the registration {asset.registration_number} was revoked by the regulator; the listing was delisted"
    if asset.status == AssetStatus.cancelled:
        return "the asset's registration was cancelled; the listing was delisted"
    if asset.provider_id != listing.provider_id:
        return "the asset changed hands; the listing was delisted"
    return "the listing was delisted by the market"


async def settle(session: AsyncSession, ctx: Ctx, order: Order, reference: str, *, checked: bool = False) -> None:
    """Write the contract and make ``order`` active (the caller checked the payment).
    Refuses (``NotSettleable``, nothing written) an order that can no longer be settled.

    ``checked``: earlier in this transaction the caller read the listing, its asset and
    holder under the same locks and found them orderable (placing runs the order's gates,
    approving runs ``why_unsettleable``), so reading them again could find nothing new."""
    ORDER.check(order, "settle")
    if not checked:
        why = await why_unsettleable(session, order)
        ORDER.check(order, "settle")  # as read afresh under the locks
        if why is not None:
            raise NotSettleable(f"order {order.id} cannot be settled: {why}", extra={"reason": why})
    contract = await contract_document(session, ctx, order, reference)
    entry, full = await documents.record(session, ctx, "trade.settled", f"order:{order.id}", contract)
    expires_at = ctx.now + timedelta(days=access_days(order))
    await ORDER.move(session, order, "settle", ctx, payment_reference=reference,
                     asset_revision=contract["commitment"]["revision"], settled_at=ctx.now,
                     expires_at=expires_at,
                     contract=signing.canonical(full).decode(), contract_leaf=canonical_entry(entry),
                     updated_at=ctx.now)
    await ctx.services.events.publish(session, ctx, OrderSettled(order))
    await notices.order_status(session, ctx, order, "order.active", holder=True, expires_at=rfc3339(expires_at))


async def record_bank_payment(session: AsyncSession, ctx: Ctx, order_id: str, reference: str,
                              amount: Money, quoted: str | None = None) -> Order:
    """The operator saw the bank transfer arrive: the amount must equal the price, and
    what the payer wrote on it (``quoted``, when the operator gives it) must name this
    order (``read.same_reference``), so a transfer is not booked to the wrong order.

    For an order that can no longer be settled (or was cancelled), the transfer is
    recorded as owed back to the buyer and the order ends ``cancelled`` with the reason:
    raises ``Ended`` — the caller commits, then answers 409 ``not-settleable``."""
    ctx.user.require(Role.operator)
    order = await access.load(session, order_id, ctx.user)
    if order.payment_method != "bank_transfer":
        raise Unprocessable(f"order {order_id} is paid by {order.payment_method}, not bank transfer",
                            kind="wrong-payment-method")
    if order.status != OrderStatus.cancelled:
        ORDER.check(order, "settle")
    if (amount.amount, amount.currency) != (order.price, order.currency):
        raise Unprocessable(f"the transfer of {amount.human()} does not equal the price "
                            f"{human(order.price, order.currency)}", kind="amount-mismatch")
    if quoted is not None and not same_reference(quoted, order):
        raise Unprocessable(f"the transfer quotes {quoted!r}, not this order's reference {payment_reference(order)}",
                            kind="reference-mismatch", extra={"expected": payment_reference(order), "errors": [
                                {"field": "quoted_reference", "message": f"must be {payment_reference(order)}"}]})
    if order.status == OrderStatus.cancelled:
        why = order.status_reason or "the order was cancelled"
    else:
        try:
            await settle(session, ctx, order, reference=f"bank:{reference}")
            return order
        except NotSettleable as exc:
            why = exc.extra["reason"]
        await end_unsettled(session, ctx, order, why, cause="not-settleable")
    await returns.owe(session, ctx, order, f"bank:{reference}", amount, cause="not-settleable")
    raise Ended(NotSettleable(
        f"order {order_id} cannot be settled ({why}); it is cancelled and the transfer {reference} of "
        f"{amount.human()} is recorded as owed back to the buyer", extra={"reason": why}))


async def payment_failed(session: AsyncSession, ctx: Ctx, order: Order, failure_code: str | None) -> None:
    await ORDER.move(session, order, "fail_payment", ctx, failure_code=failure_code or "failed", updated_at=ctx.now)
    await documents.record(session, ctx, "trade.payment_failed", f"order:{order.id}", {
        "order": order.id, "attempt": order.payment_attempt, "intent": order.intent_id,
        "failure_code": order.failure_code})
    await notices.order_status(session, ctx, order, "order.payment_failed", failure_code=order.failure_code)


async def expire_due(session: AsyncSession, ctx: Ctx, limit: int = 500) -> int:
    """Active orders whose access period ended: ``expired`` (the clock task)."""
    due = (await session.execute(select(Order).where(
        col(Order.status) == OrderStatus.active, col(Order.expires_at) <= ctx.now)
        .order_by(col(Order.expires_at)).limit(limit))).scalars().all()
    for order in due:
        await ORDER.move(session, order, "expire", ctx, updated_at=ctx.now)
        await documents.record(session, ctx, "trade.expired", f"order:{order.id}", {"order": order.id,
                                                                               "expired_at": rfc3339(ctx.now)})
        await notices.order_status(session, ctx, order, "order.expired")
    return len(due)


async def contract_bundle(session: AsyncSession, log: Log, order: access.Contract) -> dict[str, Any]:
    if order.contract is None or order.contract_leaf is None:
        raise InvalidTransition(f"order {order.id}", order.status, "a contract (it is written at settlement)")
    return await bundle(session, log, f"order:{order.id}", order.contract, bytes(order.contract_leaf))
