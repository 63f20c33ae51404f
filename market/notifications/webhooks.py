"""Webhook endpoints: registration (with the address rule), reading, deletion, the
delivery log and the ``ping`` test.

Address rule (SSRF): the URL must be ``http://`` or ``https://`` with a host; unless
``MARKET_WEBHOOK_ALLOW_PRIVATE`` is true, every address the host resolves to (or the
IP literal) must be a public one — loopback, private, link-local, shared, reserved,
multicast and unspecified addresses are refused with 422 ``webhook-address-not-allowed``.
"""

import asyncio
import base64
import json
import secrets
import socket
from datetime import datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import NotFound, Unprocessable
from market.core.ids import new_id
from market.core.pagination import check_limit, decode_cursor, encode_cursor
from market.notifications import patterns, sender
from market.notifications.dispatch import envelope
from market.notifications.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from market.notifications.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead
from market.storage import MasterKey


def _refuse(url: str, why: str) -> Unprocessable:
    return Unprocessable(f"webhook URL {url!r} is not allowed: {why}", kind="webhook-address-not-allowed",
                         extra={"errors": [{"field": "url", "message": why}]})


async def check_url(url: str, allow_private: bool) -> str:
    """The URL if it may be a webhook endpoint (see the module's rule); 422 otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse(url, "it is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise _refuse(url, "only http:// and https:// URLs are allowed")
    host = parts.hostname
    if not host:
        raise _refuse(url, "it has no host")
    if parts.username is not None or parts.password is not None:
        raise _refuse(url, "credentials in the URL are not allowed")
    if allow_private:
        return url
    try:
        addresses = [ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError):
            raise _refuse(url, f"the host {host!r} does not resolve") from None
        addresses = [ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not sender.is_public(address):
            raise _refuse(url, f"{host} is a loopback, private, link-local or otherwise non-public address "
                               f"({address}); set MARKET_WEBHOOK_ALLOW_PRIVATE=true to allow it")
    return url


def webhook_read(endpoint: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(id=endpoint.id, url=endpoint.url, events=patterns.loads(endpoint.events),
                       enabled=endpoint.enabled, disabled_at=endpoint.disabled_at,
                       disabled_reason=endpoint.disabled_reason, created_at=endpoint.created_at)


async def create(session: AsyncSession, ctx: Ctx, master_key: MasterKey, data: WebhookCreate) -> WebhookCreated:
    caller = ctx.user
    caller.require_verified()
    events = patterns.check(data.events)
    url = await check_url(data.url.strip(), ctx.settings.webhook_allow_private)
    key = secrets.token_bytes(32)
    endpoint = WebhookEndpoint(id=new_id("whk"), account_id=caller.id, url=url,
                               events=json.dumps(events, separators=(",", ":")), enabled=True, created_at=ctx.now,
                               secret=b"")
    endpoint.secret = master_key.wrap(sender.secret_aad(endpoint.id), key)
    session.add(endpoint)
    await session.flush()
    return WebhookCreated(**webhook_read(endpoint).model_dump(),
                          secret="whsec_" + base64.b64encode(key).decode())


async def load(session: AsyncSession, ctx: Ctx, webhook_id: str) -> WebhookEndpoint:
    """The caller's endpoint; 404 for any other's (or none)."""
    endpoint = await session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or endpoint.account_id != ctx.user.id:
        raise NotFound(f"webhook {webhook_id} not found")
    return endpoint


async def own(session: AsyncSession, ctx: Ctx, limit: int, cursor: str | None) -> dict[str, Any]:
    check_limit(limit)
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.account_id) == ctx.user.id)
    if cursor:
        query = query.where(col(WebhookEndpoint.id) > decode_cursor(cursor))
    rows = (await session.execute(query.order_by(col(WebhookEndpoint.id)).limit(limit + 1))).scalars().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [webhook_read(r) for r in rows], "next_cursor": encode_cursor(rows[-1].id) if more and rows else None}


async def remove(session: AsyncSession, ctx: Ctx, webhook_id: str) -> None:
    """The endpoint, its undelivered messages and its delivery log go."""
    endpoint = await load(session, ctx, webhook_id)
    await session.execute(delete(WebhookAttempt).where(col(WebhookAttempt.endpoint_id) == endpoint.id))
    await session.execute(delete(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint.id))
    await session.delete(endpoint)


async def deliveries(session: AsyncSession, ctx: Ctx, webhook_id: str, limit: int,
                     cursor: str | None) -> dict[str, Any]:
    """The attempts at delivering to the endpoint, newest first."""
    endpoint = await load(session, ctx, webhook_id)
    check_limit(limit)
    query = (select(WebhookAttempt, col(WebhookMessage.event), col(WebhookMessage.status))
             .join(WebhookMessage, col(WebhookMessage.id) == col(WebhookAttempt.message_id))
             .where(col(WebhookAttempt.endpoint_id) == endpoint.id))
    if cursor:
        position = decode_cursor(cursor)
        try:
            before = int(position.removeprefix("att_"))
        except ValueError:
            raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor") from None
        query = query.where(col(WebhookAttempt.id) < before)
    rows = (await session.execute(query.order_by(col(WebhookAttempt.id).desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [DeliveryRead(event_id=a.event_id, event=event, attempt=a.attempt, attempted_at=a.attempted_at,
                          status_code=a.status_code, error=a.error, next_attempt_at=a.next_attempt_at, status=status)
             for a, event, status in rows]
    return {"items": items, "next_cursor": encode_cursor(f"att_{rows[-1][0].id}") if more and rows else None}


async def make_ping(session: AsyncSession, ctx: Ctx, master_key: MasterKey, webhook_id: str,
                    now: datetime) -> sender.Claimed:
    """A ``ping`` message for the endpoint, claimed by this request (it sends it at once)."""
    endpoint = await load(session, ctx, webhook_id)
    event_id = new_id("evt")
    message = WebhookMessage(event_id=event_id, endpoint_id=endpoint.id, event="ping",
                             payload=envelope("ping", now, endpoint.id, {"webhook": endpoint.id}),
                             status="pending", next_attempt_at=now + sender.lease_of(ctx.settings), created_at=now)
    session.add(message)
    await session.flush()
    assert message.id is not None  # the flush gave it one
    return sender.Claimed(message.id, event_id, endpoint.id, endpoint.url,
                          master_key.unwrap(sender.secret_aad(endpoint.id), endpoint.secret), message.payload)
