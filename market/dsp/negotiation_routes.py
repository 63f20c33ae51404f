"""The negotiation routes of the Dataspace Protocol (docs/API.md "Dataspace Protocol"):

    POST /dsp/2025-1/negotiations/request                              201 REQUESTED
    GET  /dsp/2025-1/negotiations/{providerPid}                        the negotiation
    POST /dsp/2025-1/negotiations/{providerPid}/request                a counter-offer
    POST /dsp/2025-1/negotiations/{providerPid}/events                 ACCEPTED
    POST /dsp/2025-1/negotiations/{providerPid}/agreement/verification
    POST /dsp/2025-1/negotiations/{providerPid}/termination

The consumer is a verified buyer's bearer token; errors are ``ContractNegotiationError``
bodies. What the market says back (offer, agreement, events, termination) is held until
the answer has been sent (``market.dsp.callbacks``).
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get, post
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.services import Services
from market.dsp import callbacks, negotiations, protocol
from market.dsp.models import DspNegotiation
from market.dsp.protocol import DspError
from market.trading import orders

ERROR = negotiations.ERROR
Step = Callable[[AsyncSession, Ctx, str, Any], Awaitable[DspNegotiation]]


async def _message(request: Request[Any, Any, Any]) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise DspError(400, "bad-message", "the body is not JSON", error_type=ERROR) from None


async def _answer(services: Services, db: AsyncSession, ctx: Ctx, work: Callable[[], Awaitable[DspNegotiation]],
                  status: int, state: str | None = None) -> Response[Any]:
    """Run ``work`` and commit; what it owes the consumer is released after the answer."""
    with callbacks.hold() as held:
        try:
            row = await work()
        except DomainError as exc:
            await db.rollback()
            raise protocol.from_domain(exc, ERROR) from None
        await db.commit()
    body = negotiations.body(row, state)
    return Response(body, status_code=status, media_type="application/json",
                    background=callbacks.released_after(services, held))


@post(f"{protocol.BASE}/negotiations/request", status_code=201, tags=["dataspace protocol"],
      summary="Request a contract (ContractRequestMessage): an order through the market's gates")
async def request_contract(request: Request[Any, Any, Any], services: Services, db: AsyncSession) -> Response[Any]:
    try:
        caller = await protocol.consumer(request, ERROR)
        message = await _message(request)
        ctx = Ctx.of(services, caller)
        negotiations.check_message(message, "ContractRequestMessage")
        existing = await negotiations.find(db, ctx, message["consumerPid"])
        if existing is not None:  # the same request again: the same process
            return protocol.ok(negotiations.body(existing), 201)
        with callbacks.hold() as held:
            try:
                row = await negotiations.request(db, ctx, message)
                await db.commit()
            except (orders.Refused, DomainError) as exc:
                problem = exc.problem if isinstance(exc, orders.Refused) else exc
                if isinstance(exc, orders.Refused):
                    await orders.keep_refusal(db, ctx, exc)
                await db.rollback()
                row = await negotiations.terminated_at_once(db, ctx, message, problem.kind, problem.detail)
                await db.commit()
        # The answer is the request as taken; what the market did with it follows as messages.
        return Response(negotiations.body(row, "REQUESTED"), status_code=201, media_type="application/json",
                        background=callbacks.released_after(services, held))
    except DspError as exc:
        return exc.response()


@get(f"{protocol.BASE}/negotiations/{{provider_pid:str}}", tags=["dataspace protocol"],
     summary="A negotiation of the caller's")
async def negotiation(request: Request[Any, Any, Any], services: Services, db: AsyncSession,
                      provider_pid: str) -> Response[Any]:
    try:
        ctx = Ctx.of(services, await protocol.consumer(request, ERROR))
        return protocol.ok(negotiations.body(await negotiations.load(db, ctx, provider_pid)))
    except DspError as exc:
        exc.provider_pid = exc.provider_pid or provider_pid
        return exc.response()


def _step(path: str, step: Step, summary: str) -> Any:
    @post(f"{protocol.BASE}/negotiations/{{provider_pid:str}}{path}", status_code=200, tags=["dataspace protocol"],
          summary=summary, name=f"negotiation{path.replace('/', '_')}")
    async def route(request: Request[Any, Any, Any], services: Services, db: AsyncSession,
                    provider_pid: str) -> Response[Any]:
        message: Any = None
        try:
            ctx = Ctx.of(services, await protocol.consumer(request, ERROR))
            message = await _message(request)
            return await _answer(services, db, ctx, lambda: step(db, ctx, provider_pid, message), 200)
        except DspError as exc:
            exc.provider_pid = exc.provider_pid or provider_pid
            if isinstance(message, dict) and isinstance(message.get("consumerPid"), str):
                exc.consumer_pid = exc.consumer_pid or message["consumerPid"]
            return exc.response()

    return route


NEGOTIATION_ROUTES = [
    request_contract, negotiation,
    _step("/request", negotiations.counter, "A counter-offer (ContractRequestMessage)"),
    _step("/events", negotiations.accept, "The consumer accepts the offer (ContractNegotiationEventMessage)"),
    _step("/agreement/verification", negotiations.verify, "The consumer verifies the agreement"),
    _step("/termination", negotiations.terminate, "The consumer ends the negotiation"),
]
