"""Provider statements and payouts (清结算, docs/API.md "Orders"). Services never commit.

A statement is for one provider and one calendar month (UTC, ``YYYY-MM``), per
currency, in integer minor units (fen) — nothing is rounded, so it adds up exactly:

- ``gross``: the ``price`` of the provider's orders *settled* in the month, whatever
  their status now (active, expired, refunded);
- ``fee``: the market's ``fee`` of those orders;
- ``refunds``: the ``provider_share`` of the provider's orders *refunded* in the month.
  A refund is counted in the month it happens, as an accountant books it, not in the
  month of the sale: a statement, once its month is over, never changes, and a refund
  in May of an April sale shows on May's statement;
- ``net = gross − fee − refunds``; ``paid_out``: the payouts recorded for the provider,
  the month and the currency; ``due = net − paid_out``.

Metered plans (docs/usage.md) add their periods' charges: a charge counts in ``gross``
(and its fee in ``fee``) in the month it is paid, as an order counts when it settles;
``charges`` lists them.

``net`` and ``due`` can be negative (a month whose refunds exceed its sales, or a refund
after the month was paid out): the provider then owes the market that amount, shown as
is rather than carried into another month. ``orders`` lists every order that counts:
settled in the month, refunded in it, or both (``settled_in_period`` /
``refunded_in_period`` say which figure it enters).

Payouts (operators): money sent to a provider for a month, never more than that month's
``due`` in that currency (422 ``payout-exceeds-due``). Two concurrent payouts must not
together exceed it: on PostgreSQL the provider's ``accounts`` row is locked
(``SELECT … FOR UPDATE``) before ``due`` is computed, so the second waits for the first
to commit and then sees its payout; SQLite runs one writer at a time (``BEGIN
IMMEDIATE``). Each payout is a confidential ``payout.recorded`` entry on
``payout:<id>``.
"""

import re
from collections import defaultdict
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.errors import NotFound, Unprocessable
from market.core.ids import new_id
from market.core.money import Money, human
from market.trading import documents, notices
from market.trading.models import Order, Payout, UsagePeriod
from market.trading.schemas import PayoutCreate, PayoutRead

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class SignedMoney(BaseModel):
    """Money that may be negative (``net``, ``due``): integer minor units."""

    amount: int = Field(description="minor units (fen); negative when the provider owes the market")
    currency: str


class StatementCharge(BaseModel):
    order: str
    period: int
    records: int
    charge: Money
    fee: Money
    reference: str
    paid_at: datetime


class Totals(BaseModel):
    currency: str
    gross: Money
    fee: Money
    refunds: Money
    net: SignedMoney
    paid_out: Money
    due: SignedMoney


class StatementOrder(BaseModel):
    id: str
    status: str
    settled_at: datetime | None
    refunded_at: datetime | None
    price: Money
    fee: Money
    provider_share: Money
    settled_in_period: bool = Field(description="counts in gross and fee")
    refunded_in_period: bool = Field(description="its provider_share counts in refunds")


class Statement(BaseModel):
    provider: str
    period: str
    starts_at: datetime
    ends_at: datetime = Field(description="exclusive: the first instant of the next month")
    totals: list[Totals] = Field(description="one per currency, by currency code")
    orders: list[StatementOrder]
    charges: list[StatementCharge] = Field(default_factory=list, description="metered periods paid in the month")
    payouts: list[PayoutRead]


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[first instant, first instant of the next month)`` of ``YYYY-MM`` in UTC; 422 otherwise."""
    match = _PERIOD.fullmatch(period or "")
    if match is None or int(match.group(1)) < 1970:
        raise Unprocessable(f"period {period!r} is not a month as YYYY-MM (e.g. 2026-05)", kind="bad-period")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    if year == 9999 and month == 12:
        raise Unprocessable(f"period {period!r} is out of range", kind="bad-period")
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= at < end


def payout_read(payout: Payout) -> PayoutRead:
    return PayoutRead(id=payout.id, provider=payout.provider_id, period=payout.period,
                      amount=Money(amount=payout.amount, currency=payout.currency), reference=payout.reference,
                      created_at=payout.created_at)


async def statement(session: AsyncSession, provider_id: str, period: str) -> Statement:
    start, end = period_bounds(period)
    in_period = lambda column: and_(column >= start, column < end)  # noqa: E731
    orders = (await session.execute(
        select(Order).where(col(Order.provider_id) == provider_id,
                            or_(in_period(col(Order.settled_at)), in_period(col(Order.refunded_at))))
        .order_by(col(Order.settled_at), col(Order.id)))).scalars().all()
    payouts = (await session.execute(
        select(Payout).where(col(Payout.provider_id) == provider_id, col(Payout.period) == period)
        .order_by(col(Payout.id)))).scalars().all()

    sums: dict[str, dict[str, int]] = defaultdict(lambda: {"gross": 0, "fee": 0, "refunds": 0, "paid_out": 0})
    listed = []
    for order in orders:
        settled, refunded = _within(order.settled_at, start, end), _within(order.refunded_at, start, end)
        figures = sums[order.currency]
        if settled:
            figures["gross"] += order.price
            figures["fee"] += order.fee
        if refunded:
            figures["refunds"] += order.provider_share
        money = lambda amount, c=order.currency: Money(amount=amount, currency=c)  # noqa: E731
        listed.append(StatementOrder(id=order.id, status=order.status, settled_at=order.settled_at,
                                     refunded_at=order.refunded_at, price=money(order.price), fee=money(order.fee),
                                     provider_share=money(order.provider_share), settled_in_period=settled,
                                     refunded_in_period=refunded))
    charges = (await session.execute(
        select(UsagePeriod).join(Order, col(Order.id) == col(UsagePeriod.order_id))
        .where(col(Order.provider_id) == provider_id, col(UsagePeriod.status) == "paid",
               in_period(col(UsagePeriod.paid_at)), col(UsagePeriod.charge) > 0)
        .order_by(col(UsagePeriod.paid_at), col(UsagePeriod.id)))).scalars().all()
    charged = []
    for period_ in charges:
        assert period_.paid_at is not None
        sums[period_.currency]["gross"] += period_.charge
        sums[period_.currency]["fee"] += period_.fee
        charged.append(StatementCharge(order=period_.order_id, period=period_.period, records=period_.records,
                                       charge=Money(amount=period_.charge, currency=period_.currency),
                                       fee=Money(amount=period_.fee, currency=period_.currency),
                                       reference=period_.reference, paid_at=period_.paid_at))
    for payout in payouts:
        sums[payout.currency]["paid_out"] += payout.amount

    totals = []
    for currency in sorted(sums):
        f = sums[currency]
        net = f["gross"] - f["fee"] - f["refunds"]
        due = net - f["paid_out"]
        money = lambda amount, c=currency: Money(amount=amount, currency=c)  # noqa: E731
        totals.append(Totals(currency=currency, gross=money(f["gross"]), fee=money(f["fee"]),
                             refunds=money(f["refunds"]), net=SignedMoney(amount=net, currency=currency),
                             paid_out=money(f["paid_out"]), due=SignedMoney(amount=due, currency=currency)))
    return Statement(provider=provider_id, period=period, starts_at=start, ends_at=end, totals=totals,
                     orders=listed, charges=charged, payouts=[payout_read(p) for p in payouts])


def current_period(now: datetime) -> str:
    """The calendar month (UTC) ``now`` falls in, as ``YYYY-MM``."""
    return now.astimezone(UTC).strftime("%Y-%m")


async def own_statement(session: AsyncSession, ctx: Ctx, period: str | None) -> Statement:
    """The caller's statement for ``period``, by default the month the market's clock is
    in (UTC, as every statement's months)."""
    ctx.user.require(Role.provider)
    return await statement(session, ctx.user.id, current_period(ctx.now) if period is None else period)


def due_of(found: Statement, currency: str) -> int:
    return next((t.due.amount for t in found.totals if t.currency == currency), 0)


async def record_payout(session: AsyncSession, ctx: Ctx, data: PayoutCreate) -> Payout:
    ctx.user.require(Role.operator)
    account = await session.get(Account, data.provider)
    if account is None:
        raise NotFound(f"no account {data.provider}")
    if Role.provider not in account.role_set:
        raise Unprocessable(f"account {data.provider} is not a provider", kind="not-a-provider")
    amount, currency = data.amount.amount, data.amount.currency
    if amount <= 0:
        raise Unprocessable("a payout is of a positive amount", kind="payout-not-positive")
    # Payouts of this provider queue here (PostgreSQL; SQLite has one writer at a time),
    # so the due computed next already counts every payout committed before.
    await session.execute(select(col(Account.id)).where(col(Account.id) == account.id).with_for_update())
    due = due_of(await statement(session, account.id, data.period), currency)
    if amount > due:
        raise Unprocessable(f"{human(amount, currency)} exceeds what is due to {account.id} for {data.period}: "
                            f"{human(due, currency)}", kind="payout-exceeds-due",
                            extra={"due": {"amount": due, "currency": currency}})
    payout = Payout(id=new_id("pay"), provider_id=account.id, period=data.period, currency=currency, amount=amount,
                    reference=data.reference, recorded_by=ctx.user.id, created_at=ctx.now)
    session.add(payout)
    await session.flush()
    await documents.record(session, ctx, "payout.recorded", f"payout:{payout.id}", {
        "payout": payout.id, "provider": account.id, "period": data.period,
        "amount": {"amount": amount, "currency": currency}, "reference": data.reference})
    await notices.payout_recorded(session, ctx, payout)
    return payout
