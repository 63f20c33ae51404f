"""The inbox: each account's notifications, newest first; marking them read."""

import json
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.db import rowcount
from market.core.pagination import check_limit, decode_cursor, encode_cursor
from market.notifications.models import Notification
from market.notifications.schemas import MarkRead, NotificationRead


def notification_read(row: Notification) -> NotificationRead:
    return NotificationRead(id=row.id, event=row.event, subject=row.subject, created_at=row.created_at,
                            read_at=row.read_at, data=json.loads(row.data))


async def page(session: AsyncSession, ctx: Ctx, unread: bool, limit: int, cursor: str | None) -> dict[str, Any]:
    check_limit(limit)
    query = select(Notification).where(col(Notification.account_id) == ctx.user.id)
    if unread:
        query = query.where(col(Notification.read_at).is_(None))
    if cursor:
        query = query.where(col(Notification.id) < decode_cursor(cursor))
    rows = (await session.execute(query.order_by(col(Notification.id).desc()).limit(limit + 1))).scalars().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [notification_read(r) for r in rows],
            "next_cursor": encode_cursor(rows[-1].id) if more and rows else None}


async def mark_read(session: AsyncSession, ctx: Ctx, data: MarkRead) -> int:
    """Mark the caller's own notifications read; others' ids and read ones do not count."""
    query = update(Notification).where(col(Notification.account_id) == ctx.user.id,
                                       col(Notification.read_at).is_(None))
    if not data.all:
        ids = sorted(set(data.ids or []))
        if not ids:
            return 0
        query = query.where(col(Notification.id).in_(ids))
    result = await session.execute(query.values(read_at=ctx.now))
    return rowcount(result)
