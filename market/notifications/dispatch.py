"""The dispatcher: committed ``outbox`` rows become inbox notifications and webhook
messages, in order, one transaction per batch.

On PostgreSQL one process dispatches at a time (a transaction-level advisory lock);
on SQLite writers are serialised anyway. The batch's rows are marked dispatched with a
conditional update in the same transaction, so a second dispatcher that read them too
finds nothing left to mark and rolls back: each row is dispatched once.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.db import rowcount, run, table_of
from market.core.ids import new_id
from market.core.outbox import OutboxEvent
from market.core.types import rfc3339
from market.notifications import patterns
from market.notifications.models import Notification, WebhookEndpoint, WebhookMessage

ADVISORY_LOCK_KEY = 0x6D6B746E6F7466  # "mktnotf"
BATCH = 500


def envelope(event: str, at: datetime, subject: str, data: dict[str, Any]) -> str:
    """The webhook body (Standard Webhooks): ``{"type", "timestamp", "data"}``."""
    return json.dumps({"type": event, "timestamp": rfc3339(at), "data": {"subject": subject, **data}},
                      ensure_ascii=False, separators=(",", ":"))


async def _role_members(session: AsyncSession, role: str) -> list[str]:
    rows = (await session.execute(select(col(Account.id), col(Account.roles))
                                  .where(col(Account.roles).contains(role)))).all()
    return sorted(account_id for account_id, roles in rows if role in roles.split(","))


@dataclass(frozen=True)
class _Batch:
    """A batch read and worked out: its outbox rows, and the notifications and webhook
    messages they make."""

    seqs: list[int]
    at: datetime
    inbox: list[dict[str, Any]]
    messages: list[dict[str, Any]]


async def dispatch_once(sessionmaker: async_sessionmaker[AsyncSession], now: Callable[[], datetime],
                        batch: int = BATCH, reader: async_sessionmaker[AsyncSession] | None = None) -> int:
    """Dispatch up to ``batch`` outbox rows; returns how many.

    With ``reader`` (read sessions), the batch is read and worked out before the write
    transaction, which then only marks the rows and inserts what they make: on SQLite the
    file's one write lock, which every API request's write waits for, is held for that
    alone. Rows another dispatcher marked meanwhile fail the mark, as they would in one
    transaction."""
    planned: _Batch | None = None
    if reader is not None:
        async with reader() as session:
            planned = await _plan(session, now, batch)
        if planned is None:
            return 0
    async with sessionmaker() as session:
        if session.get_bind().dialect.name == "postgresql":
            got = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                         {"k": ADVISORY_LOCK_KEY})).scalar()
            if not got:
                return 0
        if planned is None:
            planned = await _plan(session, now, batch)
            if planned is None:
                return 0
        marked = await run(session, _MARK, {"seqs": planned.seqs, "at": planned.at})
        if rowcount(marked) != len(planned.seqs):
            await session.rollback()  # another dispatcher has them
            return 0
        if planned.inbox:
            await run(session, _ADD_NOTIFICATIONS, planned.inbox)
        if planned.messages:
            await run(session, _ADD_MESSAGES, planned.messages)
        await session.commit()
        return len(planned.seqs)


_OUTBOX = table_of(OutboxEvent)
_MARK = (update(_OUTBOX).where(_OUTBOX.c.seq.in_(bindparam("seqs", expanding=True)), _OUTBOX.c.dispatched_at.is_(None))
         .values(dispatched_at=bindparam("at")))
_ADD_NOTIFICATIONS = insert(table_of(Notification))
_ADD_MESSAGES = insert(table_of(WebhookMessage))


async def _plan(session: AsyncSession, now: Callable[[], datetime], batch: int) -> _Batch | None:
    """The next ``batch`` undispatched rows and what they make; None when there are none."""
    events = (await session.execute(
        select(OutboxEvent).where(col(OutboxEvent.dispatched_at).is_(None))
        .order_by(col(OutboxEvent.seq)).limit(batch))).scalars().all()
    if not events:
        return None
    at = now()
    roles: dict[str, list[str]] = {}
    told: list[tuple[OutboxEvent, str, dict[str, Any]]] = []
    for event in events:
        seen: set[str] = set()
        for recipient in event.recipient_list():
            if recipient.get("role"):
                role = recipient["role"]
                if role not in roles:
                    roles[role] = await _role_members(session, role)
                accounts = roles[role]
            else:
                accounts = [recipient["account"]]
            for account_id in accounts:
                if account_id in seen:
                    continue
                seen.add(account_id)
                told.append((event, account_id, recipient.get("data") or {}))
    accounts = sorted({account_id for _, account_id, _ in told})
    endpoints: dict[str, list[WebhookEndpoint]] = {}
    if accounts:
        found = (await session.execute(select(WebhookEndpoint).where(
            col(WebhookEndpoint.account_id).in_(accounts), col(WebhookEndpoint.enabled).is_(True))
            .order_by(col(WebhookEndpoint.id)))).scalars().all()
        for endpoint in found:
            endpoints.setdefault(endpoint.account_id, []).append(endpoint)
    subscriptions = {e.id: patterns.loads(e.events) for group in endpoints.values() for e in group}
    # Ids sort as the events came (the inbox is newest first by id).
    ids = iter(sorted(new_id("ntf") for _ in told))
    inbox: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for event, account_id, data in told:
        inbox.append(dict(id=next(ids), account_id=account_id, event_id=event.id, event=event.type,
                          subject=event.subject, data=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                          created_at=event.created_at, read_at=None))
        for endpoint in endpoints.get(account_id, []):
            if patterns.matches(subscriptions[endpoint.id], event.type):
                messages.append(dict(event_id=event.id, endpoint_id=endpoint.id, event=event.type,
                                     payload=envelope(event.type, event.created_at, event.subject, data),
                                     attempts=0, status="pending", next_attempt_at=at, created_at=at,
                                     delivered_at=None))
    return _Batch([e.seq or 0 for e in events], at, inbox, messages)
