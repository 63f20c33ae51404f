"""The inbox and webhook routes (docs/API.md "Notifications and webhooks"): thin controllers.

    GET    /v1/notifications                 the caller's inbox, newest first (?unread=true)
    POST   /v1/notifications/read            {"ids": [...]} or {"all": true} → {"marked": n}
    POST   /v1/webhooks                      verified accounts → 201 with the secret, once
    GET    /v1/webhooks, /v1/webhooks/{id}   the caller's endpoints
    DELETE /v1/webhooks/{id}                 → 204
    GET    /v1/webhooks/{id}/deliveries      the delivery log
    POST   /v1/webhooks/{id}/test            sends a ping now
"""

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import idempotency
from market.core.context import Ctx
from market.core.pagination import DEFAULT_LIMIT, Page
from market.core.services import Services
from market.notifications import inbox, sender, webhooks
from market.notifications.schemas import (
    DeliveryRead,
    Marked,
    MarkRead,
    NotificationRead,
    PingResult,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
)

Limit = Annotated[int, Parameter(ge=1, le=500)]


@get("/v1/notifications", tags=["notifications"], summary="The caller's inbox, newest first")
async def list_notifications(db: AsyncSession, ctx: Ctx, unread: bool = False, limit: Limit = DEFAULT_LIMIT,
                             cursor: str | None = None) -> Page[NotificationRead]:
    return Page(**await inbox.page(db, ctx, unread, limit, cursor))


@post("/v1/notifications/read", status_code=200, tags=["notifications"],
      summary='Mark notifications read: {"ids": [...]} or {"all": true}')
async def mark_read(db: AsyncSession, ctx: Ctx, data: MarkRead) -> Marked:
    marked = await inbox.mark_read(db, ctx, data)
    await db.commit()
    return Marked(marked=marked)


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["notifications"]

    @post("/", status_code=201, summary="Register a webhook endpoint (verified account); the secret is shown once")
    async def create(self, request: Request, services: Services, db: AsyncSession, ctx: Ctx,
                     data: WebhookCreate) -> Response[WebhookCreated]:
        async def action() -> tuple[int, Any]:
            return 201, await webhooks.create(db, ctx, services.content_key(), data)

        return await idempotency.run(request, db, ctx.user.id, data, action)

    @get("/", summary="The caller's webhook endpoints")
    async def list(self, db: AsyncSession, ctx: Ctx, limit: Limit = DEFAULT_LIMIT,
                   cursor: str | None = None) -> Page[WebhookRead]:
        return Page(**await webhooks.own(db, ctx, limit, cursor))

    @get("/{webhook_id:str}", summary="One of the caller's webhook endpoints")
    async def read(self, db: AsyncSession, ctx: Ctx, webhook_id: str) -> WebhookRead:
        return webhooks.webhook_read(await webhooks.load(db, ctx, webhook_id))

    @delete("/{webhook_id:str}", status_code=204, summary="Delete a webhook endpoint")
    async def remove(self, db: AsyncSession, ctx: Ctx, webhook_id: str) -> None:
        await webhooks.remove(db, ctx, webhook_id)
        await db.commit()

    @get("/{webhook_id:str}/deliveries", summary="Delivery attempts to the endpoint, newest first")
    async def deliveries(self, db: AsyncSession, ctx: Ctx, webhook_id: str, limit: Limit = DEFAULT_LIMIT,
                         cursor: str | None = None) -> Page[DeliveryRead]:
        return Page(**await webhooks.deliveries(db, ctx, webhook_id, limit, cursor))

    @post("/{webhook_id:str}/test", status_code=200, summary="Send a ping event to the endpoint now")
    async def test(self, services: Services, db: AsyncSession, ctx: Ctx, webhook_id: str) -> PingResult:
        claimed = await webhooks.make_ping(db, ctx, services.content_key(), webhook_id, ctx.now)
        await db.commit()
        async with sender.new_client(ctx.settings) as client:
            outcome = await sender.post(client, claimed)
        await sender.record(services, services.clock.now(), [outcome])
        return PingResult(event_id=claimed.event_id, delivered=outcome.ok, status_code=outcome.status_code,
                          error=outcome.error)


NOTIFICATION_ROUTES: list[Any] = [list_notifications, mark_read, WebhookController]

__all__ = ["NOTIFICATION_ROUTES"]
