"""Statuses of orders and disputes and their transition tables (pure data).

docs/API.md "Orders": ``pending_approval → awaiting_payment → active → expired``, with
``rejected``, ``cancelled``, ``payment_failed`` (retryable) and ``refunded`` as exits.
An order needing no approval starts awaiting payment; a free one is settled at once.
Settlement (payment confirmed) writes the contract and makes the order ``active`` in one
transaction. A dispute is its own object: ``open → refunded | rejected``.

Every entry is confidential (docs/LEDGER.md §2): the machines write none themselves; the
services append ``trade.*`` entries holding only the salted document hash
(``market.trading.documents``).
"""

from enum import StrEnum

from market.core.statemachine import Machine, Transition
from market.trading.models import Dispute, Order, UsagePeriod


class OrderStatus(StrEnum):
    pending_approval = "pending_approval"
    awaiting_payment = "awaiting_payment"
    active = "active"
    expired = "expired"
    rejected = "rejected"
    cancelled = "cancelled"
    payment_failed = "payment_failed"
    refunded = "refunded"


class DisputeStatus(StrEnum):
    open = "open"
    refunded = "refunded"
    rejected = "rejected"


O = OrderStatus  # noqa: E741 - short, for the tables of states below
UNPAID = frozenset({O.pending_approval, O.awaiting_payment, O.payment_failed})
PAYABLE = frozenset({O.awaiting_payment, O.payment_failed})

T = Transition.of


def _subject(order: Order) -> str:
    return f"order:{order.id}"


ORDER = Machine("order", Order, OrderStatus, O.pending_approval, {
    "approve": T({O.pending_approval}, None, None),  # one party's approval; others may be due
    "ready": T({O.pending_approval}, O.awaiting_payment, None),  # every approval given
    "reject": T({O.pending_approval}, O.rejected, None),
    "cancel": T(UNPAID, O.cancelled, None),
    "start_payment": T(PAYABLE, O.awaiting_payment, None),  # a new attempt at the gateway
    "fail_payment": T(PAYABLE, O.payment_failed, None),
    "settle": T(PAYABLE, O.active, None),
    "expire": T({O.active}, O.expired, None),
    "refund": T({O.active}, O.refunded, None),
}, subject=_subject)

DISPUTE = Machine("dispute", Dispute, DisputeStatus, DisputeStatus.open, {
    "refund": T({DisputeStatus.open}, DisputeStatus.refunded, None),
    "reject": T({DisputeStatus.open}, DisputeStatus.rejected, None),
}, subject=lambda d: f"order:{d.order_id}")



class PeriodStatus(StrEnum):
    """A metered order's period (docs/usage.md): counting, then billed, then paid (or paid at once
    when it comes to nothing)."""

    open = "open"
    billed = "billed"
    paid = "paid"


# Entries: the period's ``usage.period`` and the payment's ``usage.charge_paid`` are confidential
# documents (market.usage.metering), written beside the moves.
USAGE_PERIOD = Machine("usage_period", UsagePeriod, PeriodStatus, PeriodStatus.open, {
    "bill": T({PeriodStatus.open}, PeriodStatus.billed, None),
    "close_free": T({PeriodStatus.open}, PeriodStatus.paid, None),  # nothing used: nothing to pay
    "pay": T({PeriodStatus.billed}, PeriodStatus.paid, None),
}, subject=lambda p: f"order:{p.order_id}")

MACHINES = (ORDER, DISPUTE, USAGE_PERIOD)
