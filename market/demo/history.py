"""Making the planned history (``market.demo.plan``) through the services, the demo's
clock set to each moment in turn (``market.demo.clock``).

Every step is the service call the route would make, as the party the route would
answer: the buyer places (``orders.place``) and cancels its orders and opens disputes;
the holder decides approvals; the regulator decides orders of important data and
closes an alert with acts signed by its enrolled key (``oversight.actions``,
``oversight.alerts``); the operator records the bank transfers it received
(``settlement.record_bank_payment``), resolves disputes and pays providers out
(``statements.record_payout``); a refused attempt is kept as the order route keeps it
(``orders.keep_refusal``). Each step is one transaction, committed, as a request's is.

The market's clock work runs as ``market serve``'s would, once a day of the history:
access periods that ended (``settlement.expire_due``) and the alert rules
(``alerts.evaluate``, batch after batch from the evaluator's mark: everything was written
seconds ago, so ``evaluate_once``'s re-reading of the last minute would read it all again
every day).
"""

import heapq
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.money import Money
from market.core.services import Services
from market.demo.clock import DemoClock
from market.demo.plan import Attempt, Closure, History, Offer, Trade
from market.demo.regulator import Regulator
from market.listings.models import Listing
from market.oversight import actions, acts, alerts
from market.oversight.models import Alert, EvaluatorMark
from market.registry.models import Asset
from market.trading import disputes, orders, settlement, statements
from market.trading.disputes import ResolutionBody
from market.trading.models import Order
from market.trading.schemas import DisputeCreate, OrderCreate, PayoutCreate
from market.trading.states import OrderStatus
from market.web.auth import Caller

HOLDER_REASONS = {"approve": "用途与资质审核通过", "reject": "申请用途超出本数据的授权范围"}
REGULATOR_REASONS = {"approve": "重要数据交易：用途、安全措施与接收方资质审查通过",
                     "reject": "重要数据交易：接收方未能说明数据安全保护措施，不予批准"}
DISPUTE_REASONS = ("交付数据的字段与挂牌说明不一致", "数据时间范围缺少约定的月份", "交付文件无法解析，编码与说明不符",
                   "数据更新频率低于挂牌承诺")
RESOLUTIONS = {"refund": "经核实交付内容与交易条款不符，全额退款", "reject": "经核实交付内容符合交易条款，驳回"}
PAYOUT_DAY = timedelta(days=4, hours=2)  # payouts: the 5th of each month, 10:00 CST, for the month before

Work = Callable[[AsyncSession], Awaitable[object]]


@dataclass
class Made:
    """What the history made (for the report)."""

    orders: int = 0
    settled: int = 0
    bank: int = 0  # bank transfers the operator confirmed
    free: int = 0
    refunds: int = 0
    regulator_approvals: int = 0
    refusals: int = 0
    alerts: list[str] = field(default_factory=list)  # the rules of the alerts opened
    closed: int = 0
    payouts: int = 0
    months: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


class _Maker:
    def __init__(self, services: Services, clock: DemoClock, callers: dict[str, Caller], desk: Caller,
                 regulator: Regulator) -> None:
        self.services = services
        self.clock = clock
        self.callers = callers
        self.desk = desk
        self.regulator = regulator
        self.made = Made()
        self.orders: dict[int, str] = {}  # id(trade) -> order id
        self.disputes: dict[int, str] = {}
        self.queue: list[tuple[datetime, int, Callable[[], Awaitable[None]]]] = []
        self.unread = True  # trade documents or refusals written since the alert rules last ran
        self.seq = itertools.count()

    def at(self, when: datetime, step: Callable[[], Awaitable[None]]) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), step))

    def ctx(self, caller: Caller | None) -> Ctx:
        return Ctx.of(self.services, caller)

    async def step(self, what: str, work: Work) -> bool:
        """One transaction: ``work(session)``, committed. A refusal is noted, not raised
        (what the history planned is what the market allows, so there should be none)."""
        self.unread = True
        async with self.services.sessionmaker() as session:
            try:
                await work(session)
            except settlement.Ended as ended:  # kept as the route keeps it
                await session.commit()
                self.made.problems.append(f"{self.clock.now():%Y-%m-%d %H:%M} {what}: {ended.problem.detail}")
                return False
            except DomainError as exc:
                await session.rollback()
                self.made.problems.append(f"{self.clock.now():%Y-%m-%d %H:%M} {what}: {exc.detail}")
                return False
            await session.commit()
            return True

    def settled(self, order: Order) -> None:
        if order.status == OrderStatus.active:
            self.made.settled += 1
            self.made.free += order.payment_method == "free"
            self.made.bank += order.payment_method == "bank_transfer"
            self.made.months.add(f"{self.clock.now():%Y-%m}")

    # -- one trade -----------------------------------------------------------------------------------

    def schedule(self, trade: Trade) -> None:
        self.at(trade.placed, lambda: self.place(trade))
        for decision, decide in ((trade.holder, self.decide), (trade.regulator, self.regulate)):
            if decision is not None:
                self.at(decision[0], partial(decide, trade, decision[1]))
        if trade.paid is not None:
            self.at(trade.paid, lambda: self.pay(trade))
        if trade.cancelled is not None:
            self.at(trade.cancelled, lambda: self.cancel(trade))
        if trade.dispute is not None:
            opened, resolved, verdict = trade.dispute
            self.at(opened, lambda: self.dispute(trade))
            if resolved is not None:
                self.at(resolved, lambda: self.resolve(trade, verdict))

    async def place(self, trade: Trade) -> None:
        offer = trade.offer
        data = OrderCreate.model_validate({"listing_id": offer.listing, "plan_id": offer.plan, "purpose": trade.purpose,
                                           "payment_method": "free" if offer.model == "free" else "bank_transfer"})

        async def work(session: AsyncSession) -> None:
            order, _ = await orders.place(session, self.ctx(self.callers[trade.buyer]), data)
            self.orders[id(trade)] = order.id
            self.settled(order)

        if await self.step(f"order of {offer.title} by {trade.buyer}", work):
            self.made.orders += 1

    async def decide(self, trade: Trade, decision: str) -> None:
        order_id = self.orders.get(id(trade))
        if order_id is None:
            return
        ctx = self.ctx(self.callers[trade.offer.provider])

        async def work(session: AsyncSession) -> None:
            self.settled(await orders.decide(session, ctx, order_id, decision, HOLDER_REASONS[decision],
                                             as_regulator=False))

        await self.step(f"the holder's decision on {order_id}", work)

    async def regulate(self, trade: Trade, decision: str) -> None:
        order_id = self.orders.get(id(trade))
        if order_id is None:
            return
        ctx = self.ctx(self.regulator.caller)
        body = self.regulator.sign(acts.draft(ctx, "approval", {"order": order_id, "decision": decision,
                                                                "reason": REGULATOR_REASONS[decision]}))

        async def work(session: AsyncSession) -> None:
            self.settled(await actions.decide_approval(session, ctx, order_id, body))

        if await self.step(f"the regulator's decision on {order_id}", work) and decision == "approve":
            self.made.regulator_approvals += 1

    async def pay(self, trade: Trade) -> None:
        order_id = self.orders.get(id(trade))
        if order_id is None:
            return
        reference = f"CNAPS{self.clock.now():%Y%m%d}{order_id[-8:].upper()}"
        amount = Money(amount=trade.offer.amount, currency=trade.offer.currency)

        async def work(session: AsyncSession) -> None:
            self.settled(await settlement.record_bank_payment(session, self.ctx(self.desk), order_id, reference, amount))

        await self.step(f"the bank transfer for {order_id}", work)

    async def cancel(self, trade: Trade) -> None:
        order_id = self.orders.get(id(trade))
        if order_id is not None:
            buyer = self.ctx(self.callers[trade.buyer])
            await self.step(f"the cancellation of {order_id}", lambda s: orders.cancel(s, buyer, order_id))

    async def dispute(self, trade: Trade) -> None:
        order_id = self.orders.get(id(trade))
        if order_id is None:
            return
        ctx = self.ctx(self.callers[trade.buyer])
        reason = DISPUTE_REASONS[len(self.disputes) % len(DISPUTE_REASONS)]

        async def work(session: AsyncSession) -> None:
            opened, _ = await disputes.open_dispute(session, ctx, order_id, DisputeCreate(reason=reason))
            self.disputes[id(trade)] = opened.id

        await self.step(f"a dispute of {order_id}", work)

    async def resolve(self, trade: Trade, decision: str) -> None:
        dispute_id = self.disputes.get(id(trade))
        if dispute_id is None:
            return
        body = ResolutionBody.model_validate({
            "decision": decision, "reason": RESOLUTIONS[decision],
            "reference": f"REFUND{self.clock.now():%Y%m%d}{dispute_id[-6:].upper()}"
            if decision == "refund" and trade.offer.model != "free" else None})
        ctx = self.ctx(self.desk)
        if await self.step(f"the resolution of {dispute_id}", lambda s: disputes.resolve(s, ctx, dispute_id, body)) \
                and decision == "refund":
            self.made.refunds += 1

    # -- the cases without an order ---------------------------------------------------------------

    async def attempt(self, attempt: Attempt) -> None:
        offer = attempt.offer
        data = OrderCreate.model_validate({"listing_id": offer.listing, "plan_id": offer.plan,
                                           "purpose": attempt.purpose, "payment_method": "bank_transfer"})
        ctx = self.ctx(self.callers[attempt.buyer])
        self.unread = True
        async with self.services.sessionmaker() as session:
            try:
                await orders.place(session, ctx, data)
            except orders.Refused as refused:  # what the order route does with it
                await orders.keep_refusal(session, ctx, refused)
                self.made.refusals += 1
                return
            except DomainError as exc:
                await session.rollback()
                self.made.problems.append(f"an export attempt on {offer.title}: {exc.detail}")
                return
            await session.rollback()
            self.made.problems.append(f"an export attempt on {offer.title} was not refused")

    async def close(self, closure: Closure) -> None:
        async with self.services.sessionmaker() as session:
            alert = (await session.exec(select(Alert).where(col(Alert.rule) == closure.rule,
                                                            col(Alert.status) == "open").order_by(col(Alert.id)))).first()
        if alert is None:
            self.made.problems.append(f"no open {closure.rule} alert to close")
            return
        ctx = self.ctx(self.regulator.caller)
        body = self.regulator.sign(acts.draft(ctx, "alert_closure", {"alert": alert.id, "reason": closure.reason}))
        if await self.step(f"the closure of {alert.id}", lambda s: alerts.close(s, ctx, alert.id, body)):
            self.made.closed += 1

    # -- the market's clock ---------------------------------------------------------------------------

    async def chores(self) -> None:
        """Access periods that ended, then the alert rules over what is new (if anything is)."""
        while await self._system(settlement.expire_due):
            pass
        if not self.unread:
            return
        self.unread = False
        async with self.services.sessionmaker() as session:
            mark = await session.get(EvaluatorMark, "trade_documents")
            start = mark.position if mark is not None else None
        while True:
            async with self.services.sessionmaker() as session:
                opened, start = await alerts.evaluate(session, Ctx.system(self.services), start)
                await session.commit()
            self.made.alerts += opened
            if start is None:
                return

    async def _system(self, work: Callable[[AsyncSession, Ctx], Awaitable[int]]) -> int:
        async with self.services.sessionmaker() as session:
            count = await work(session, Ctx.system(self.services))
            await session.commit()
        return count

    async def payouts(self, period: str) -> None:
        """The operator pays each provider what is due for ``period`` (YYYY-MM)."""
        providers = sorted({c.id for c in self.callers.values() if c.has(Role.provider)})
        for provider in providers:
            async with self.services.sessionmaker() as session:
                due = statements.due_of(await statements.statement(session, provider, period),
                                        self.services.settings.currency)
            if due <= 0:
                continue
            data = PayoutCreate.model_validate({
                "provider": provider, "period": period, "reference": f"PAYOUT-{period}-{provider[-6:].upper()}",
                "amount": {"amount": due, "currency": self.services.settings.currency}})
            if await self.step(f"the payout to {provider} for {period}",
                               partial(self._payout, data)):
                self.made.payouts += 1

    async def _payout(self, data: PayoutCreate, session: AsyncSession) -> None:
        await statements.record_payout(session, self.ctx(self.desk), data)

    # -- the whole --------------------------------------------------------------------------------------

    def calendar(self, history: History) -> None:
        day = history.start.replace(hour=0, minute=1, second=0, microsecond=0) + timedelta(days=1)
        while day < history.end:
            self.at(day, self.chores)
            if day.day == 1:
                period = f"{day - timedelta(days=1):%Y-%m}"
                self.at(day + PAYOUT_DAY, partial(self.payouts, period))
            day += timedelta(days=1)

    async def run(self, history: History) -> Made:
        for trade in history.trades:
            self.schedule(trade)
        for attempt in history.attempts:
            self.at(attempt.at, partial(self.attempt, attempt))
        for closure in history.closures:
            self.at(closure.at, partial(self.close, closure))
        self.calendar(history)
        while self.queue:
            when, _, step = heapq.heappop(self.queue)
            if when >= history.end:
                continue
            self.clock.set(when)
            await step()
        self.clock.set(max(self.clock.now(), history.end))
        await self.chores()
        return self.made


async def offers(session: AsyncSession, keys: dict[str, str]) -> list[Offer]:
    """Every plan of the active listings of the providers in ``keys`` (account id -> party key)."""
    rows = (await session.exec(select(Listing, Asset).join(Asset, col(Asset.id) == col(Listing.asset_id)).where(
        col(Listing.status) == "active", col(Listing.provider_id).in_(list(keys))))).all()
    found = []
    for listing, asset in rows:
        licence = json.loads(listing.licence)
        for p in json.loads(listing.plans):
            found.append(Offer(listing.id, p["id"], keys[listing.provider_id], listing.title, asset.category,
                               p["model"], p["price"]["amount"], p["price"]["currency"],
                               frozenset(p.get("private_to") or ()), listing.approval_required,
                               asset.grade == "important", asset.export_allowed and licence["territory"] == "global",
                               tuple(licence["purposes"])))
    return found


async def make(services: Services, clock: DemoClock, callers: dict[str, Caller], desk: Caller,
               regulator: Regulator, history: History) -> Made:
    """Make ``history`` in the market of ``services``; ``callers`` by party key."""
    return await _Maker(services, clock, callers, desk, regulator).run(history)


__all__ = ["Made", "make", "offers"]
