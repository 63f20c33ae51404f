"""Delivery routes (docs/API.md "Orders"): the content of an order, streamed, and the Merkle
proof of any chunk of it. The rules are in ``market.trading.delivery``."""

from collections.abc import Iterable
from typing import Annotated, Any

import anyio
from litestar import Request, get
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.logs import log
from market.core.services import Services
from market.core.types import INT32_MAX
from market.trading import access, delivery, proofs, receipts
from market.trading.delivery import Sending

Revision = Annotated[int | None, Parameter(ge=1, le=INT32_MAX, description="a subscription's revision (default: the newest "
                                                            "it covers)")]


class _RecordedResponse(ASGIStreamingResponse):
    """Streams a ``Sending`` and records, once the stream is over however it ended, what
    the server handed to the connection (see ``market.trading.delivery``)."""

    __slots__ = ()

    async def send_body(self, send: Send, receive: Receive) -> None:
        sending = self.iterator
        assert isinstance(sending, Sending)

        async def counted(message: Any) -> None:
            await send(message)
            sending.sent(message.get("body", b""))

        try:
            await super().send_body(counted, receive)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await sending.finish()
                except Exception:  # noqa: BLE001 - the response is gone; say so in the log
                    log.exception("could not record a delivery", order=sending.order_id,
                                  bytes_sent=sending.bytes_sent)


class DeliveryStream(Stream):
    """Litestar's ``Stream`` whose ASGI response records the delivery."""

    def to_asgi_response(self, app: Any, request: Request, *,
                         background: BackgroundTask | BackgroundTasks | None = None,
                         cookies: Iterable[Cookie] | None = None,
                         encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
                         headers: dict[str, str] | None = None, is_head_response: bool = False,
                         media_type: Any = None, status_code: int | None = None,
                         type_encoders: Any = None) -> ASGIResponse:
        headers = {**headers, **self.headers} if headers is not None else self.headers
        sending = self.iterator
        assert isinstance(sending, Sending)  # a DeliveryStream is made of one (``download``)
        return _RecordedResponse(
            background=self.background or background, content_length=0,
            cookies=[*self.cookies, *(cookies or ())], encoded_headers=encoded_headers, encoding=self.encoding,
            headers=headers, is_head_response=is_head_response, iterator=sending,
            media_type="application/octet-stream", status_code=self.status_code or status_code,
        )


CONTENT_RESPONSES = {
    206: ResponseSpec(data_container=bytes, description="The range asked for (``Content-Range``)",
                      media_type="application/octet-stream"),
    416: ResponseSpec(data_container=dict, description="The range starts beyond the content "
                                                       "(``Content-Range: bytes */size``)",
                      media_type="application/problem+json"),
    409: ResponseSpec(data_container=dict, description="No access now: the order is not active or has expired, "
                                                       "or the asset or listing is frozen (``no-access``)",
                      media_type="application/problem+json"),
}


@get("/v1/orders/{order_id:str}/content", tags=["orders"], media_type="application/octet-stream",
     summary="The data, decrypted and streamed (the order's buyer, while access lasts); Range supported",
     responses=CONTENT_RESPONSES)
async def order_content(request: Request, db: AsyncSession, ctx: Ctx, order_id: str,
                        revision: Revision = None) -> DeliveryStream:
    sending = await delivery.open_delivery(db, ctx, order_id, revision, request.headers.get("range"),
                                           request.headers.get("if-range"))
    await db.rollback()  # no transaction is held while the body streams
    await sending.start()  # a blob missing or unreadable is a problem now, before the headers are sent
    return DeliveryStream(sending, status_code=206 if sending.partial else 200, headers=sending.headers(),
                          media_type="application/octet-stream")


@get("/v1/orders/{order_id:str}/content/proof", tags=["orders"],
     summary="RFC 9162 inclusion proof of one chunk in the content's Merkle tree (the order's buyer)",
     responses={409: CONTENT_RESPONSES[409]})
async def order_content_proof(db: AsyncSession, ctx: Ctx, order_id: str,
                              chunk: Annotated[int, Parameter(ge=0, le=INT32_MAX, description="the chunk's index, from 0")],
                              revision: Revision = None) -> dict[str, Any]:
    return await proofs.proof(db, ctx, order_id, chunk, revision)


@get("/v1/orders/{order_id:str}/deliveries", tags=["orders"],
     summary="The order's delivery receipts, each with its inclusion proof into its batch's ledger entry "
             "(buyer, holder, staff)")
async def order_deliveries(services: Services, db: AsyncSession, ctx: Ctx, order_id: str,
                           limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
                           cursor: str | None = None) -> dict[str, Any]:
    order = await access.load(db, order_id, ctx.user)
    return await receipts.listing(db, services.ledger, order, limit, cursor)


ROUTES = [order_content, order_content_proof, order_deliveries]
