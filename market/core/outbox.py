"""The outbox: what the market tells people, written in the transaction of the change.

A service that changes something someone must hear of calls ``notify`` before it
commits. The event lands in ``outbox`` with the rest of the change: a rollback sends
nothing, and a crash after the commit loses nothing (the dispatcher finds every row not
yet dispatched, whatever process wrote it). After the commit the dispatcher
(``market.notifications``) turns each row into inbox notifications and webhook
deliveries.

Each recipient is named with what *it* may see: the buyer and the holder of one order
get their own ``data``; a regulator's reason for a freeze goes to the holder alone.
A recipient is an account, or every account of a staff role (operators, regulators).
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, Text, insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.db import run, table_of
from market.core.ids import new_id
from market.core.types import UTCDateTime

__all__ = ["EVENT_TYPES", "OPERATORS", "REGULATORS", "OutboxEvent", "Recipient", "notify", "to_account", "to_role"]

# Every event the market sends (docs/API.md "Notifications and webhooks"), a closed list:
# a webhook subscribes to these names (or ``order.*``), and a typo in a service fails
# at once rather than sending what nobody subscribed to.
EVENT_TYPES = frozenset({
    # buyers
    "order.awaiting_payment", "order.active", "order.rejected", "order.expired", "order.payment_failed",
    "dispute.resolved", "usage.charge_due",
    # holders and providers
    "order.pending_approval", "dispute.opened", "asset.registered", "asset.rejected", "asset.objection_filed",
    "asset.frozen", "asset.unfrozen", "asset.revoked", "listing.frozen", "payout.recorded", "usage.period_billed",
    # operators
    "account.verification_requested", "asset.review_requested", "order.bank_payment_expected",
    # regulators
    "alert.opened", "order.regulator_approval_requested",
    # the market about an account's own webhooks
    "ping", "webhook.disabled",
})

OPERATORS = "operator"
REGULATORS = "regulator"
ROLES = frozenset({OPERATORS, REGULATORS})


@dataclass(frozen=True)
class Recipient:
    """One account (``account``), or every account of a staff ``role``; ``data`` is what it is told."""

    data: dict[str, Any] = field(default_factory=dict)
    account: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        if (self.account is None) == (self.role is None):
            raise ValueError("a recipient is an account or a role, not both or neither")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"unknown recipient role {self.role!r}")

    def as_json(self) -> dict[str, Any]:
        who = {"account": self.account} if self.account is not None else {"role": self.role}
        return {**who, "data": self.data}


class OutboxEvent(SQLModel, table=True):
    """An event to tell, written with the change that caused it; ``dispatched_at`` is set
    once its notifications and webhook deliveries exist."""

    __tablename__ = "outbox"

    # SQLite only autoincrements an INTEGER PRIMARY KEY, hence the variant.
    seq: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                           primary_key=True, autoincrement=True))
    id: str = Field(max_length=40, unique=True)  # evt_…
    type: str = Field(max_length=60)
    subject: str = Field(max_length=80)  # what it is about: ord_…, ast_…, lst_…, dsp_…, alr_…, acct_…
    recipients: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of Recipient.as_json()
    created_at: datetime = Field(sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)

    def recipient_list(self) -> list[dict[str, Any]]:
        return list(json.loads(self.recipients))


_ADD = insert(table_of(OutboxEvent))


async def notify(session: AsyncSession, ctx: Ctx, type: str, subject: str, to: list[Recipient]) -> str | None:
    """Tell ``to`` of ``type`` about ``subject``, once this transaction commits (not
    before, and never if it rolls back). Returns the event's id (None when nobody is told)."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not to:
        return None
    event_id = new_id("evt")
    # Core, not the unit of work: one prebuilt insert, now, in the order events are told.
    await run(session, _ADD, {"id": event_id, "type": type, "subject": subject, "created_at": ctx.now,
                              "recipients": json.dumps([r.as_json() for r in to], ensure_ascii=False,
                                                       separators=(",", ":")), "dispatched_at": None})
    return event_id


async def to_account(session: AsyncSession, ctx: Ctx, type: str, account_id: str, subject: str, **data: Any) -> None:
    """Tell one account alone (an asset's or listing's holder: a regulator's reason included)."""
    await notify(session, ctx, type, subject, [Recipient(account=account_id, data=data)])


async def to_role(session: AsyncSession, ctx: Ctx, type: str, role: str, subject: str, **data: Any) -> None:
    """Tell every account of a staff role (operators, regulators) what they need to act."""
    await notify(session, ctx, type, subject, [Recipient(role=role, data=data)])
