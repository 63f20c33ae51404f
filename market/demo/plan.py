"""The demo's trading history, planned: who orders what, when, and what becomes of each
order. Pure — no database, no clock — and the same for the same offers, size and
period, so a test checks the shape of the default history without making it.

**Prices.** ``price_outlier`` (docs/alerts.md) flags a priced trade more than 5 × (or
under ⅕ of) the median of its category's earlier trades. The catalogue's plans span
more than that (a monthly subscription of ¥800 beside a one-time ¥80,000), so ordinary
trades are drawn only from each category's *window*, a price range [a, 5a] holding the
most plans: any price in it is within 5 × of any median of prices in it, so no ordinary
trade is an outlier, whatever came before. Free plans are always drawn (the rule leaves
them out). The one outlier is planned (``cast.OUTLIER``).

**Cases.** Besides the ordinary trades, the plan holds one case of each rule the
regulator should see: a wash-trade pair, an order burst, a price outlier, refused
export attempts, orders of important data decided by the regulator (one still waiting
at the end), and the regulator closing the burst's alert.

**Time.** Orders are placed on business hours of China Standard Time, fewer at
weekends, more as the market grows. What would happen after ``end`` does not happen:
the history ends with orders waiting for approval, for payment, and an open dispute.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from market.demo.cast import ABROAD, APPETITES, BURST_BUYER, OUTLIER, WASH_PAIR

FACTOR = 5  # MARKET_PRICE_OUTLIER_FACTOR's default: the widest window that trips nothing
CST = timedelta(hours=8)


@dataclass(frozen=True)
class Offer:
    """One plan of one active listing, as a buyer meets it."""

    listing: str
    plan: str
    provider: str  # the holder's party key
    title: str
    category: str
    model: str  # one_time | subscription | free
    amount: int  # minor units
    currency: str
    private_to: frozenset[str]  # account ids; empty: every buyer sees it
    approval: bool  # the holder decides each order
    important: bool  # a regulator decides each order (important data)
    export: bool  # may go to a buyer abroad: the asset is cleared for export, the licence global
    purposes: tuple[str, ...]


@dataclass
class Trade:
    buyer: str  # party key
    offer: Offer
    purpose: str
    placed: datetime
    holder: tuple[datetime, str] | None = None  # when the holder decided, and what
    regulator: tuple[datetime, str] | None = None
    paid: datetime | None = None  # the operator confirms the bank transfer
    cancelled: datetime | None = None  # by the buyer, before paying
    dispute: tuple[datetime, datetime | None, str] | None = None  # opened, resolved (None: still open), decision
    case: str = ""

    @property
    def ready(self) -> datetime | None:
        """When every approval was given (None: rejected or still waiting)."""
        at = self.placed
        for needed, decision in ((self.offer.approval, self.holder), (self.offer.important, self.regulator)):
            if needed:
                if decision is None or decision[1] != "approve":
                    return None
                at = decision[0]
        return at

    @property
    def settled(self) -> datetime | None:
        return self.ready if self.offer.model == "free" else self.paid

    @property
    def refunded(self) -> bool:
        return self.dispute is not None and self.dispute[1] is not None and self.dispute[2] == "refund"


@dataclass(frozen=True)
class Attempt:
    """An order the export gate refuses."""

    buyer: str
    offer: Offer
    purpose: str
    at: datetime


@dataclass(frozen=True)
class Closure:
    """The regulator closes the open alert of ``rule`` with a signed act."""

    rule: str
    at: datetime
    reason: str


@dataclass
class History:
    start: datetime
    end: datetime
    trades: list[Trade] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    closures: list[Closure] = field(default_factory=list)

    @property
    def settled(self) -> list[Trade]:
        return [t for t in self.trades if t.settled is not None]

    def months(self) -> set[str]:
        return {t.settled.strftime("%Y-%m") for t in self.trades if t.settled is not None}


def windows(offers: list[Offer]) -> dict[str, tuple[int, int]]:
    """Each category's price window [a, FACTOR × a], the one holding the most priced
    plans (those of important data counting thrice, so that they are traded)."""
    found: dict[str, tuple[int, int]] = {}
    for category in sorted({o.category for o in offers}):
        priced = [o for o in offers if o.category == category and o.amount > 0]
        best: tuple[int, int] | None = None
        best_score = -1
        for low in sorted({o.amount for o in priced}):
            score = sum(3 if o.important else 1 for o in priced if low <= o.amount <= FACTOR * low)
            if score > best_score:
                best, best_score = (low, FACTOR * low), score
        if best is not None:
            found[category] = best
    return found


def ordinary(offers: list[Offer]) -> list[Offer]:
    """What ordinary trades are drawn from: free plans and plans inside their window."""
    bounds = windows(offers)
    return [o for o in offers if o.amount == 0 or bounds[o.category][0] <= o.amount <= bounds[o.category][1]]


class _Planner:
    def __init__(self, offers: list[Offer], accounts: dict[str, str], start: datetime, end: datetime,
                 size: int) -> None:
        self.offers = offers
        self.usual = ordinary(offers)
        self.accounts = accounts  # party key -> account id
        self.history = History(start, end)
        self.rnd = random.Random(f"demo-history/{size}")
        self.size = size
        self.bought: set[tuple[str, str]] = set()  # (buyer, plan) of one-time plans bought
        days = max(1, (end - start).days)
        first = (start + CST).replace(hour=0, minute=0, second=0, microsecond=0) - CST  # midnight in CST
        self.days = [first + timedelta(days=d) for d in range(days + 1)]
        self.weights = [(0.5 + d / days) * (0.35 if (day + CST).weekday() >= 5 else 1.0)
                        for d, day in enumerate(self.days)]

    # -- helpers --------------------------------------------------------------------------------

    @property
    def end(self) -> datetime:
        return self.history.end

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=round(self.rnd.uniform(low, high) * 60))

    def at(self, fraction: float, hour: float = 10.0) -> datetime:
        """A moment ``fraction`` of the way through the history, at ``hour`` CST."""
        day = self.days[min(len(self.days) - 1, int(fraction * (len(self.days) - 1)))]
        return day + timedelta(hours=hour)

    def business_time(self) -> datetime:
        day = self.rnd.choices(self.days, self.weights)[0]
        return day + timedelta(hours=9) + self.hours(0, 9)

    def visible(self, offer: Offer, buyer: str) -> bool:
        return not offer.private_to or self.accounts.get(buyer, "") in offer.private_to

    def may_buy(self, offer: Offer, buyer: str, *, across: bool = False) -> bool:
        """Whether ``buyer`` may be planned to order ``offer`` (the wash pair trades across
        only when planned: ``across``)."""
        if offer.provider == buyer or not self.visible(offer, buyer):
            return False
        if {offer.provider, buyer} == set(WASH_PAIR) and not across:
            return False
        if buyer == ABROAD and not offer.export:
            return False
        return not (offer.model == "one_time" and (buyer, offer.plan) in self.bought)

    def purpose(self, offer: Offer, buyer: str) -> str:
        liked = [p for p in APPETITES[buyer].purposes if p in offer.purposes]
        return self.rnd.choice(liked) if liked and self.rnd.random() < 0.8 else self.rnd.choice(offer.purposes)

    def _cut(self, at: datetime | None) -> datetime | None:
        return at if at is not None and at < self.end else None

    # -- an order's life ----------------------------------------------------------------------------

    def trade(self, buyer: str, offer: Offer, placed: datetime, case: str = "", *, rejects: str | None = None,
              pays: bool = True, disputes: bool | None = None, renew: bool = True) -> Trade | None:
        """Plan one order and what becomes of it. A case forces its outcome: ``rejects``
        (``holder``, ``regulator`` or ``nobody``), ``pays``, ``disputes``; None draws it."""
        if placed >= self.end:
            return None
        trade = Trade(buyer, offer, self.purpose(offer, buyer), placed, case=case)
        self.history.trades.append(trade)
        if offer.model == "one_time":
            self.bought.add((buyer, offer.plan))
        at = placed
        for needed, party, low, high, odds in ((offer.approval, "holder", 2, 20, 0.08),
                                              (offer.important, "regulator", 6, 40, 0.12)):
            if not needed:
                continue
            at = at + self.hours(low, high)
            rejected = rejects == party if rejects is not None else self.rnd.random() < odds
            if at >= self.end:
                return trade
            setattr(trade, party, (at, "reject" if rejected else "approve"))
            if rejected:
                return trade
        if offer.model != "free":
            if not pays or (case == "" and self.rnd.random() < 0.05):
                trade.cancelled = self._cut(at + self.hours(20, 48))
                return trade
            trade.paid = self._cut(at + self.hours(3, 72))
        settled = trade.settled
        if settled is None:
            return trade
        # Disputes of one-time purchases only (access for a year): a subscription's month may
        # be ended meanwhile by a serving market's clock, which keeps real time.
        if disputes is None:
            disputes = case == "" and offer.model == "one_time" and self.rnd.random() < 0.1
        opened = settled + self.hours(20, 120)
        if disputes and opened < self.end:
            decision = "refund" if self.rnd.random() < 0.65 else "reject"
            trade.dispute = (opened, self._cut(opened + self.hours(12, 60)), decision)
        if renew and offer.model == "subscription" and not trade.refunded and self.rnd.random() < 0.5:
            self.trade(buyer, offer, settled + timedelta(days=29) + self.hours(0, 8), case)
        return trade

    # -- the cases ------------------------------------------------------------------------------------

    def pick(self, buyer: str, **want: object) -> Offer | None:
        found = [o for o in self.usual if self.may_buy(o, buyer, across=True) and not o.approval and not o.important
                 and all(getattr(o, k) == v for k, v in want.items())]
        return self.rnd.choice(found) if found else None

    def cases(self) -> None:
        self.wash()
        self.outlier()
        self.burst()
        self.abroad()
        self.important()

    def wash(self) -> None:
        """Each of the pair buys from the other, six days apart."""
        first, second = WASH_PAIR
        one = self.pick(first, provider=second, model="one_time")
        other = self.pick(second, provider=first, model="one_time")
        if one is not None and other is not None:
            self.trade(first, one, self.at(0.55, 10.5), "wash", disputes=False, renew=False)
            self.trade(second, other, self.at(0.55, 15.2) + timedelta(days=6), "wash", disputes=False, renew=False)

    def outlier(self) -> None:
        buyer, title = OUTLIER
        offer = next((o for o in self.offers if o.title == title and o.model == "one_time"), None)
        if offer is not None and self.may_buy(offer, buyer):
            self.trade(buyer, offer, self.at(0.65, 11.0), "outlier", disputes=False)

    def median_known(self) -> None:
        """The outlier needs a median: ``PRICE_MIN_SAMPLE`` (3) priced trades of its
        category settled before it, which a small history may lack."""
        outlier = next((t for t in self.history.trades if t.case == "outlier"), None)
        if outlier is None or outlier.settled is None:
            return
        category = outlier.offer.category
        before = [t for t in self.history.trades if t.offer.category == category and t.offer.amount > 0
                  and t is not outlier and t.settled is not None and t.settled < outlier.settled]
        for n in range(3 - len(before)):
            buyer = min(b for b, a in APPETITES.items() if category in a.categories and b in self.accounts)
            offers = [o for o in self.usual if o.category == category and o.amount > 0 and not o.approval
                      and not o.important and self.may_buy(o, buyer)]
            if offers:
                self.trade(buyer, offers[n % len(offers)], outlier.placed - timedelta(days=4 + n), "median",
                           pays=True, disputes=False, renew=False)

    def burst(self) -> None:
        """A runaway integration script: 24 orders in 36 minutes, the paid ones withdrawn;
        the regulator closes the alert once the buyer has explained."""
        offers = [o for o in self.usual if self.may_buy(o, BURST_BUYER) and not o.approval and not o.important]
        if not offers:
            return
        start = self.at(0.75, 14.0) + timedelta(minutes=5)
        for n in range(24):
            offer = offers[n] if n < len(offers) else self.rnd.choice(offers)
            self.trade(BURST_BUYER, offer, start + timedelta(seconds=90 * n), "burst", pays=False, disputes=False,
                       renew=False)
        self.history.closures.append(Closure(
            "order_burst", start + timedelta(days=2, hours=1),
            "买方说明为对接脚本故障导致重复下单，付费订单已全部撤销，免费订单属正常使用；不构成异常交易。"))

    def abroad(self) -> None:
        """The buyer abroad tries, twice, an asset that may not leave the country."""
        domestic = [o for o in self.usual if not o.export and not o.private_to and not o.approval]
        if domestic:
            offer = self.rnd.choice(domestic)
            at = self.at(0.45, 16.0)
            for n, purpose in enumerate(offer.purposes[:2]):
                self.history.attempts.append(Attempt(ABROAD, offer, purpose, at + timedelta(minutes=8 * n)))

    def important(self) -> None:
        """Orders of important data along the history, one rejected by the regulator, and one
        still waiting for it when the history ends."""
        important = [o for o in self.usual if o.important and not o.private_to]
        if not important:
            return
        for n, fraction in enumerate((0.2, 0.4, 0.6, 0.8)):
            offer = important[n % len(important)]
            buyer = self.buyer_for(offer)
            if buyer is not None:
                self.trade(buyer, offer, self.at(fraction, 10.0), "important",
                           rejects="regulator" if n == 2 else "nobody", disputes=False)
        buyer = self.buyer_for(important[0])
        if buyer is not None:
            self.trade(buyer, important[0], self.end - timedelta(hours=2), "important", rejects="nobody",
                       disputes=False)

    def buyer_for(self, offer: Offer) -> str | None:
        keen = sorted(b for b, a in APPETITES.items()
                      if offer.category in a.categories and b in self.accounts and self.may_buy(offer, b))
        return self.rnd.choice(keen) if keen else None

    # -- the ordinary trades ----------------------------------------------------------------------------

    def ordinary(self) -> None:
        buyers = sorted(b for b in APPETITES if b in self.accounts)
        weights = [APPETITES[b].weight for b in buyers]
        tries = 0
        while len(self.history.settled) < self.size and tries < 50 * self.size:
            tries += 1
            buyer = self.rnd.choices(buyers, weights)[0]
            categories = APPETITES[buyer].categories
            category = self.rnd.choices(list(categories), list(categories.values()))[0]
            found = [o for o in self.usual if o.category == category and self.may_buy(o, buyer)]
            if found:
                self.trade(buyer, self.rnd.choice(found), self.business_time())

    def refund_one(self) -> None:
        """At least one refund, whatever the size: the first ordinary settled order."""
        if any(t.refunded for t in self.history.trades):
            return
        for trade in sorted(self.history.trades, key=lambda t: t.placed):
            settled = trade.settled
            if trade.case == "" and trade.offer.model == "one_time" and settled is not None \
                    and settled < self.end - timedelta(days=4):
                trade.dispute = (settled + timedelta(hours=26), settled + timedelta(hours=50), "refund")
                return

    def run(self) -> History:
        self.cases()
        self.ordinary()
        self.median_known()
        self.refund_one()
        self.history.trades.sort(key=lambda t: t.placed)
        return self.history


def plan(offers: list[Offer], accounts: dict[str, str], start: datetime, end: datetime, size: int) -> History:
    """The history of about ``size`` settled orders between ``start`` and ``end`` (UTC)
    over ``offers``, among the parties of ``accounts`` (party key -> account id)."""
    assert start.tzinfo is not None and end.tzinfo is not None
    if size <= 0:
        return History(start.astimezone(UTC), end.astimezone(UTC))
    ordered = sorted(offers, key=lambda o: (o.provider, o.title, o.model, o.amount, sorted(o.private_to)))
    return _Planner(ordered, accounts, start.astimezone(UTC),
                    end.astimezone(UTC), size).run()


__all__ = ["Attempt", "Closure", "History", "Offer", "Trade", "ordinary", "plan", "windows"]
