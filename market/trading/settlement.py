"""Settlement (清结算): payment confirmed → the contract (交易凭证) written and the order
active, in one transaction; payment failures; expiry; refunds. Never commits.

The contract is the document of the ``trade.settled`` entry (LEDGER.md §6): its salted
hash is on the public log, and the parties get it as a bundle that verifies offline
with ``python -m ledger verify-bundle``.
"""

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import canonical as canonical_entry
from ledger.log import Log
from market import signing
from market.accounts.models import Account, AccountKey
from market.accounts.schemas import Role
from market.context import Ctx
from market.errors import InvalidTransition, Unprocessable
from market.listings.schemas import without_buyers
from market.money import Money
from market.oversight import stats
from market.registry.assets import commitment_of, revision
from market.registry.certificates import bundle, holder_of
from market.registry.models import Asset
from market.trading import access, documents
from market.trading.models import Order
from market.trading.states import ORDER, OrderStatus
from market.types import rfc3339

CONTRACT_TYPE = "data-trade-contract"


def access_days(order: Order) -> int:
    plan = json.loads(order.plan)
    return int(plan["period_days"]) if plan["model"] == "subscription" else int(json.loads(order.licence)["term_days"])


async def contract_document(session: AsyncSession, ctx: Ctx, order: Order, reference: str) -> dict[str, Any]:
    asset = await session.get_one(Asset, order.asset_id)
    rev = await revision(session, asset, asset.registered_revision)
    buyer = await session.get_one(Account, order.buyer_id)
    provider = await session.get_one(Account, order.provider_id)
    assert rev is not None
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


async def settle(session: AsyncSession, ctx: Ctx, order: Order, reference: str) -> None:
    """Write the contract and make ``order`` active (the caller checked the payment)."""
    ORDER.check(order, "settle")
    contract = await contract_document(session, ctx, order, reference)
    entry, full = await documents.record(session, "trade.settled", f"order:{order.id}", contract)
    await ORDER.move(session, order, "settle", ctx, payment_reference=reference,
                     asset_revision=contract["commitment"]["revision"], settled_at=ctx.now,
                     expires_at=ctx.now + timedelta(days=access_days(order)),
                     contract=signing.canonical(full).decode(), contract_leaf=canonical_entry(entry),
                     updated_at=ctx.now)
    await stats.count_settled(session, order)


async def record_bank_payment(session: AsyncSession, ctx: Ctx, order_id: str, reference: str,
                              amount: Money) -> Order:
    """The operator saw the bank transfer arrive: the amount must equal the price."""
    ctx.user.require(Role.operator)
    order = await access.load(session, order_id, ctx.user)
    if order.payment_method != "bank_transfer":
        raise Unprocessable(f"order {order_id} is paid by {order.payment_method}, not bank transfer",
                            kind="wrong-payment-method")
    ORDER.check(order, "settle")
    if (amount.amount, amount.currency) != (order.price, order.currency):
        raise Unprocessable(f"the transfer of {amount.amount} {amount.currency} does not equal the price "
                            f"{order.price} {order.currency}", kind="amount-mismatch")
    await settle(session, ctx, order, reference=f"bank:{reference}")
    return order


async def payment_failed(session: AsyncSession, ctx: Ctx, order: Order, failure_code: str | None) -> None:
    await ORDER.move(session, order, "fail_payment", ctx, failure_code=failure_code or "failed", updated_at=ctx.now)
    await documents.record(session, "trade.payment_failed", f"order:{order.id}", {
        "order": order.id, "attempt": order.payment_attempt, "intent": order.intent_id,
        "failure_code": order.failure_code})


async def expire_due(session: AsyncSession, ctx: Ctx, limit: int = 500) -> int:
    """Active orders whose access period ended: ``expired`` (the clock task)."""
    due = (await session.execute(select(Order).where(
        Order.status == OrderStatus.active, Order.expires_at <= ctx.now)  # type: ignore[operator]
        .order_by(Order.expires_at).limit(limit))).scalars().all()
    for order in due:
        await ORDER.move(session, order, "expire", ctx, updated_at=ctx.now)
        await documents.record(session, "trade.expired", f"order:{order.id}", {"order": order.id,
                                                                               "expired_at": rfc3339(ctx.now)})
    return len(due)


async def contract_bundle(session: AsyncSession, log: Log, order: Order) -> dict[str, Any]:
    if order.contract is None or order.contract_leaf is None:
        raise InvalidTransition(f"order {order.id}", order.status, "a contract (it is written at settlement)")
    return await bundle(session, log, f"order:{order.id}", order.contract, bytes(order.contract_leaf))
