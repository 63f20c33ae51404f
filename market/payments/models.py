"""Payment tables: the Stripe webhook events the market has processed.

Stripe delivers an event at least once, and may send it again (retries, a replay from
the dashboard). Each event id is a primary key here, inserted in the transaction that
acts on the event: a second delivery, or a concurrent one, loses on the key and changes
nothing (docs/API.md: "each event id is processed once").
"""

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.types import UTCDateTime, utcnow
from market.payments.gateway import WebhookEvent


class StripeEvent(SQLModel, table=True):
    __tablename__ = "stripe_events"

    id: str = Field(primary_key=True, max_length=255)  # evt_...
    type: str = Field(max_length=100)  # payment_intent.succeeded, ...
    intent_id: str | None = Field(default=None, index=True, max_length=255)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    outcome: str = Field(max_length=40)  # what the market did: settled, failed, ignored, ...


async def record_event(session: AsyncSession, event: WebhookEvent, outcome: str) -> bool:
    """Record ``event`` as processed with ``outcome``; ``False`` if its id was already recorded.

    The insert runs in a SAVEPOINT, so a duplicate rolls back only itself and the
    caller's transaction goes on. Race-safe on PostgreSQL (a concurrent insert of the
    same id waits for the first transaction, then fails on the key) and on SQLite (one
    writer at a time). Never commits.
    """
    row = {"id": event.id, "type": event.type, "intent_id": event.intent_id, "received_at": utcnow(),
           "outcome": outcome}
    try:
        async with session.begin_nested():
            # A Core insert, not session.add: the identity map may already hold the row.
            await session.exec(insert(StripeEvent).values(**row))
    except IntegrityError:
        return False
    return True


__all__ = ["StripeEvent", "record_event"]
