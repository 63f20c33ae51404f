"""Orders as callers see them: one, or a page of them with their listings' titles in one
more query (never one per order)."""

import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.money import Money
from market.listings.models import Listing
from market.listings.schemas import Licence, PlanRead, without_buyers
from market.trading import returns
from market.trading.models import Order, PaymentReturn
from market.trading.schemas import Approvals, ListingRef, OrderRead, PaymentRead, PaymentReturnRead, Terms
from market.web.auth import Caller


def _approval(needed: bool, decision: str | None) -> str:
    if not needed:
        return "not_required"
    return {"approve": "approved", "reject": "rejected"}.get(decision or "", "pending")


def payment_reference(order: Order) -> str:
    """What a buyer quotes on its bank transfer: the order id, upper case (``ORD-…``)."""
    return order.id.upper().replace("_", "-")


def same_reference(quoted: str, order: Order) -> bool:
    """Whether what a payer wrote on a transfer names ``order``: banks drop or mangle
    separators and case in a transfer's remark (附言), so only letters and digits count."""
    def bare(text: str) -> str:
        return "".join(c for c in text.upper() if c.isascii() and c.isalnum())

    return bare(quoted) == bare(payment_reference(order))


def bank_instructions(order: Order, bank_account: str) -> dict[str, str] | None:
    """Where and how a bank-transfer order is paid, while it waits for payment."""
    if order.payment_method != "bank_transfer" or order.status != "awaiting_payment":
        return None
    return {"account": bank_account, "reference": payment_reference(order)}


def order_read(order: Order, caller: Caller, payment_returns: list[PaymentReturn] | None = None,
               bank_account: str | None = None, listing_title: str | None = None) -> OrderRead:
    """``payment_returns`` (one order's view) are shown to its buyer and staff; with
    ``bank_account``, a bank-transfer order awaiting payment shows its ``instructions``;
    with ``listing_title``, the order names its listing (``listing``)."""
    money = lambda amount: Money(amount=amount, currency=order.currency)  # noqa: E731
    buyer = caller.id == order.buyer_id
    shown = [PaymentReturnRead(**returns.view(r)) for r in payment_returns or []] \
        if buyer or caller.is_staff else []
    return OrderRead(
        id=order.id, listing_id=order.listing_id,
        listing=None if listing_title is None else ListingRef(id=order.listing_id, title=listing_title),
        asset_id=order.asset_id, buyer=order.buyer_id,
        provider=order.provider_id, status=order.status, status_reason=order.status_reason, purpose=order.purpose,
        approvals=Approvals(holder=_approval(order.needs_holder_approval, order.holder_decision),
                            regulator=_approval(order.needs_regulator_approval, order.regulator_decision)),
        price=money(order.price), fee=money(order.fee), provider_share=money(order.provider_share),
        terms=Terms(listing_id=order.listing_id, terms_version=order.terms_version, terms_sha256=order.terms_sha256,
                    plan=PlanRead(**without_buyers(json.loads(order.plan))),
                    licence=Licence(**json.loads(order.licence))),
        payment=PaymentRead(provider=order.payment_method, intent_id=order.intent_id,
                            client_secret=order.client_secret if buyer else None,
                            reference=order.payment_reference, attempt=order.payment_attempt,
                            failure_code=order.failure_code, returns=shown,
                            instructions=None if bank_account is None else bank_instructions(order, bank_account)),
        signed=order.buyer_signature is not None, settled_at=order.settled_at, expires_at=order.expires_at,
        refunded_at=order.refunded_at, created_at=order.created_at, updated_at=order.updated_at,
    )


async def listing_titles(session: AsyncSession, listing_ids: Sequence[str]) -> dict[str, str]:
    """The titles of the listings ``listing_ids``, in one query."""
    if not listing_ids:
        return {}
    rows = await session.execute(select(col(Listing.id), col(Listing.title))
                                 .where(col(Listing.id).in_(sorted(set(listing_ids)))))
    return {listing_id: title for listing_id, title in rows.all()}


async def present(session: AsyncSession, order: Order, caller: Caller, bank_account: str,
                  payment_returns: list[PaymentReturn] | None = None, listing_title: str | None = None) -> OrderRead:
    """One order as ``caller`` sees it, with its listing's title (read unless given: placing
    an order has just read its listing) and payment instructions."""
    if listing_title is None:
        listing_title = (await listing_titles(session, [order.listing_id])).get(order.listing_id)
    return order_read(order, caller, payment_returns, bank_account=bank_account, listing_title=listing_title)


async def present_many(session: AsyncSession, orders: Sequence[Order], caller: Caller,
                       bank_account: str) -> list[OrderRead]:
    """Several orders (a page): the listings' titles in one query for all of them."""
    titles = await listing_titles(session, [o.listing_id for o in orders])
    return [order_read(o, caller, bank_account=bank_account, listing_title=titles.get(o.listing_id))
            for o in orders]
