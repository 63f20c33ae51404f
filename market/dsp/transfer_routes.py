"""The transfer routes of the protocol (docs/API.md "Dataspace Protocol"): the consumer's
requests and messages, and the data endpoint (``market.dsp.data``). The rules are in
``market.dsp.transfers``; every answer here is the protocol's, never problem+json."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get, post
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.services import Services
from market.dsp import callbacks, transfers
from market.dsp.data import transfer_data
from market.dsp.protocol import BASE, DspError, consumer, from_domain, ok
from market.dsp.transfers import ERROR
from market.web.links import public_base

_TAGS = ["dataspace protocol"]


_NOT_JSON: Any = object()


async def _body(request: Request[Any, Any, Any]) -> Any:
    """The JSON body, or ``_NOT_JSON`` (refused once the caller is known: a stranger gets 404)."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return _NOT_JSON


async def _answer(request: Request[Any, Any, Any], services: Services, db: AsyncSession, body: Any,
                  work: Callable[[Ctx], Awaitable[Response[Any]]], provider_pid: str | None = None) -> Response[Any]:
    """Run ``work`` as the consumer, commit, and answer; what it owes the consumer is sent
    after the answer. An error names both pids where known (the consumer's from its body)."""
    try:
        caller = await consumer(request, ERROR)
        if body is _NOT_JSON:
            raise DspError(400, "bad-request", "the body is not JSON", error_type=ERROR)
        ctx = Ctx.of(services, caller)
        with callbacks.hold() as held, transfers.root_of_request(public_base(request)):
            try:
                response = await work(ctx)
            except DomainError as exc:
                raise from_domain(exc, ERROR, provider_pid) from exc
            await db.commit()
    except DspError as exc:
        await db.rollback()
        if exc.provider_pid is None and provider_pid is not None:
            exc.provider_pid = provider_pid
        if exc.consumer_pid is None and isinstance(body, dict) and isinstance(body.get("consumerPid"), str):
            exc.consumer_pid = body["consumerPid"]
        return exc.response()
    response.background = callbacks.released_after(services, held)
    return response


@post(f"{BASE}/transfers/request", tags=_TAGS, status_code=201,
      summary="TransferRequestMessage: a pull transfer under a finalized agreement (201 TransferProcess)")
async def transfer_request(request: Request[Any, Any, Any], services: Services, db: AsyncSession) -> Response[Any]:
    body = await _body(request)

    async def work(ctx: Ctx) -> Response[Any]:
        assert ctx.caller is not None
        _row, answer = await transfers.request(db, ctx, ctx.caller, body)
        return ok(answer, 201)

    return await _answer(request, services, db, body, work)


@get(f"{BASE}/transfers/{{provider_pid:str}}", tags=_TAGS, summary="The TransferProcess (its consumer)")
async def transfer_process(request: Request[Any, Any, Any], services: Services, db: AsyncSession,
                           provider_pid: str) -> Response[Any]:
    try:
        caller = await consumer(request, ERROR)
        row = await transfers.load(db, caller, provider_pid)
    except DspError as exc:
        if exc.provider_pid is None:
            exc.provider_pid = provider_pid
        return exc.response()
    return ok(transfers.process(row))


def _message_route(kind: str, summary: str) -> Any:
    @post(f"{BASE}/transfers/{{provider_pid:str}}/{kind}", tags=_TAGS, status_code=200, summary=summary,
          name=f"dsp_transfer_{kind}")
    async def handler(request: Request[Any, Any, Any], services: Services, db: AsyncSession,
                      provider_pid: str) -> Response[Any]:
        body = await _body(request)

        async def work(ctx: Ctx) -> Response[Any]:
            assert ctx.caller is not None
            await transfers.message(db, ctx, ctx.caller, provider_pid, kind, body)
            return Response(b"", status_code=200, media_type="application/json")

        return await _answer(request, services, db, body, work, provider_pid)

    return handler


transfer_start = _message_route("start", "TransferStartMessage: the consumer starts again what it suspended")
transfer_completion = _message_route("completion", "TransferCompletionMessage: the consumer completes the transfer")
transfer_suspension = _message_route("suspension", "TransferSuspensionMessage: the consumer suspends the transfer")
transfer_termination = _message_route("termination", "TransferTerminationMessage: the consumer ends the transfer")

TRANSFER_ROUTES = [transfer_request, transfer_process, transfer_start, transfer_completion, transfer_suspension,
                   transfer_termination, transfer_data]
