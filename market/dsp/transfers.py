"""Transfer processes (DSP 2025-1 § transfer process), the provider's side: pull only
(``HttpData-PULL``), the content of the agreement's order at ``…/transfers/<pid>/data``.

Requests
  ``agreementId`` is ``urn:market:agreement:<ord_id>`` of a FINALIZED negotiation of the
  caller's; ``format`` is ``HttpData-PULL``; a ``dataAddress`` (push) is refused; the
  order's plan must deliver by download. Anything else is ``400``. The same consumerPid
  from the same account names the same process (the request is answered again).

Who moves a transfer
  The market starts a transfer when the order can be delivered now (the rules of
  ``market.trading.delivery``) and no other transfer of the same agreement holds the
  agreement (one STARTED or SUSPENDED at a time; the others wait REQUESTED, the oldest
  first). A request the order cannot be delivered for now is terminated at once, its
  ``code`` the problem kind. Afterwards the market follows the order (``follow_*``,
  subscribed in ``market.wiring.subscribers``): a freeze of the asset or listing or a
  suspension of the buyer suspends started transfers (by the provider), lifting it
  starts them again; the order refunded or expired, or the registration revoked,
  terminates every open one. A whole download sent to its end completes the transfer
  (``delivered``). The consumer may suspend, complete or terminate its transfer, and
  resume one it suspended itself.

Tokens
  Every start makes a new token (``secrets.token_urlsafe(32)``) sent in the
  ``TransferStartMessage`` and kept only as its SHA-256; any other move ends it.

The endpoint's address
  ``MARKET_PUBLIC_URL`` when set. Otherwise, in a protocol request, that request's base
  URL; in a move made elsewhere (a regulator's freeze lifted, a download completed) the
  address the market last advertised in a ``TransferStartMessage`` (the callbacks keep
  each message as sent), so no column remembers it. A market behind a proxy should set
  ``MARKET_PUBLIC_URL``.
"""

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError
from market.core.ids import new_id
from market.core.logs import log
from market.core.services import Services
from market.dsp import callbacks, steps
from market.dsp.models import DspCallback, DspNegotiation, DspTransfer
from market.dsp.protocol import (
    BASE,
    CONTEXT,
    ENDPOINT_TYPE,
    HTTP_PULL,
    DspError,
    envelope,
    from_domain,
    parse_agreement_id,
)
from market.dsp.states import NEGOTIATION, OPEN_TRANSFER, NegotiationState, TransferState
from market.dsp.states import TRANSFER as DSP_TRANSFER
from market.listings.models import Listing
from market.registry.models import Asset
from market.registry.states import AssetStatus
from market.trading import delivery
from market.trading.models import Order
from market.trading.states import OrderStatus
from market.web.auth import Caller

ERROR = "TransferError"
P = TransferState
HOLDING = (P.STARTED, P.SUSPENDED)  # a transfer that holds its agreement

_root: ContextVar[str | None] = ContextVar("dsp_transfer_root", default=None)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def process(row: DspTransfer) -> dict[str, Any]:
    """The ``TransferProcess`` body of ``row``."""
    return {"@context": CONTEXT, "@type": "TransferProcess", "providerPid": row.id,
            "consumerPid": row.consumer_pid, "state": row.status}


def data_path(provider_pid: str) -> str:
    return f"{BASE}/transfers/{provider_pid}/data"


@contextlib.contextmanager
def root_of_request(base: str) -> Iterator[None]:
    """Within: the endpoint's address is under ``base`` (a protocol request's base URL)."""
    token = _root.set(base.rstrip("/"))
    try:
        yield
    finally:
        _root.reset(token)


async def _root_now(session: AsyncSession, ctx: Ctx) -> str:
    if ctx.settings.public_url:
        return ctx.settings.public_url.rstrip("/")
    base = _root.get()
    if base:
        return base
    last = (await session.execute(select(col(DspCallback.payload)).where(
        col(DspCallback.message_type) == "TransferStartMessage").order_by(col(DspCallback.id).desc()).limit(1))
    ).scalar_one_or_none()
    if last is not None:
        endpoint = str(json.loads(last).get("dataAddress", {}).get("endpoint", ""))
        at = endpoint.find(f"{BASE}/transfers/")
        if at >= 0:
            return endpoint[:at]
    log.warning("no public address known for a transfer's endpoint; set MARKET_PUBLIC_URL")
    return ""


def _message(row: DspTransfer, type_: str, code: str | None = None, reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"@context": CONTEXT, "@type": type_, "providerPid": row.id, "consumerPid": row.consumer_pid}
    if code:
        body["code"] = code
    if reason:
        body["reason"] = [reason]
    return body


# -- the moves ------------------------------------------------------------------------


async def _start(session: AsyncSession, ctx: Ctx, row: DspTransfer, by: str) -> None:
    token = secrets.token_urlsafe(32)
    await DSP_TRANSFER.move(session, row, "start", ctx, token_sha256=token_hash(token), suspended_by=None, code=None,
                        reason=None, updated_at=ctx.now)
    await steps.transfer(session, ctx, row, "started", by)
    message = _message(row, "TransferStartMessage")
    message["dataAddress"] = {
        "@type": "DataAddress", "endpointType": ENDPOINT_TYPE,
        "endpoint": await _root_now(session, ctx) + data_path(row.id),
        "endpointProperties": [{"@type": "EndpointProperty", "name": "authorization", "value": token},
                               {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]}
    await callbacks.owe(session, ctx, row.id, row.callback_address, f"/transfers/{row.consumer_pid}/start", message)


async def _suspend(session: AsyncSession, ctx: Ctx, row: DspTransfer, by: str, code: str | None,
                   reason: str | None) -> None:
    await DSP_TRANSFER.move(session, row, "suspend", ctx, token_sha256=None, suspended_by=by, code=code, reason=reason,
                        updated_at=ctx.now)
    await steps.transfer(session, ctx, row, "suspended", by, code=code, reason=reason)
    if by != "consumer":
        await callbacks.owe(session, ctx, row.id, row.callback_address, f"/transfers/{row.consumer_pid}/suspension",
                            _message(row, "TransferSuspensionMessage", code, reason))


async def _complete(session: AsyncSession, ctx: Ctx, row: DspTransfer, by: str) -> None:
    await DSP_TRANSFER.move(session, row, "complete", ctx, token_sha256=None, suspended_by=None, updated_at=ctx.now)
    await steps.transfer(session, ctx, row, "completed", by)
    if by != "consumer":
        await callbacks.owe(session, ctx, row.id, row.callback_address, f"/transfers/{row.consumer_pid}/completion",
                            _message(row, "TransferCompletionMessage"))


async def _terminate(session: AsyncSession, ctx: Ctx, row: DspTransfer, by: str, code: str | None,
                     reason: str | None) -> None:
    await DSP_TRANSFER.move(session, row, "terminate", ctx, token_sha256=None, suspended_by=None, code=code,
                        reason=reason, updated_at=ctx.now)
    await steps.transfer(session, ctx, row, "terminated", by, code=code, reason=reason)
    if by != "consumer":
        await callbacks.owe(session, ctx, row.id, row.callback_address, f"/transfers/{row.consumer_pid}/termination",
                            _message(row, "TransferTerminationMessage", code, reason))


# -- whether the order delivers now ----------------------------------------------------


async def _blocked(session: AsyncSession, ctx: Ctx, order: Order) -> tuple[DomainError, bool] | None:
    """Why the order's content cannot be delivered now (the delivery rules), and whether
    for good (the order ended, the registration revoked); None when it can."""
    asset = await session.get_one(Asset, order.asset_id)
    listing = await session.get(Listing, order.listing_id)
    buyer = await session.get_one(Account, order.buyer_id)
    refusal = delivery.refusal(order, asset, listing, buyer.suspended, ctx.now)
    if refusal is None:
        return None
    ended = (order.status != OrderStatus.active or order.expires_at is None or order.expires_at <= ctx.now
             or asset.status == AssetStatus.revoked)
    return refusal, ended


async def _open_of(session: AsyncSession, order_id: str) -> list[DspTransfer]:
    return list((await session.execute(select(DspTransfer).where(
        col(DspTransfer.order_id) == order_id, col(DspTransfer.status).in_([s.value for s in OPEN_TRANSFER]))
        .order_by(col(DspTransfer.created_at), col(DspTransfer.id)))).scalars().all())


async def reconcile(session: AsyncSession, ctx: Ctx, order_id: str) -> None:
    """Move the order's open transfers to what the order allows now (see the module)."""
    rows = await _open_of(session, order_id)
    if not rows:
        return
    order = await session.get_one(Order, order_id)
    blocked = await _blocked(session, ctx, order)
    if blocked is not None:
        refusal, ended = blocked
        for row in rows:
            if ended:
                await _terminate(session, ctx, row, "provider", refusal.kind, refusal.detail)
            elif row.status == P.STARTED:
                await _suspend(session, ctx, row, "provider", refusal.kind, refusal.detail)
        return
    for row in rows:
        if row.status == P.SUSPENDED and row.suspended_by == "provider":
            await _start(session, ctx, row, "provider")
    if any(r.status in HOLDING for r in rows):
        return
    negotiation = await session.get_one(DspNegotiation, rows[0].negotiation_id)
    await NEGOTIATION.guard(session, negotiation)  # one start per agreement at a time
    await _start(session, ctx, rows[0], "provider")


async def follow(session: AsyncSession, ctx: Ctx, where: Any) -> None:
    """Reconcile every order with open transfers that ``where`` (on ``Order``) selects."""
    order_ids = (await session.execute(select(col(DspTransfer.order_id)).distinct().join(
        Order, col(Order.id) == col(DspTransfer.order_id)).where(
        col(DspTransfer.status).in_([s.value for s in OPEN_TRANSFER]), where))).scalars().all()
    for order_id in sorted(order_ids):
        await reconcile(session, ctx, order_id)


async def follow_asset(session: AsyncSession, ctx: Ctx, asset_id: str) -> None:
    await follow(session, ctx, col(Order.asset_id) == asset_id)


async def follow_listing(session: AsyncSession, ctx: Ctx, listing_id: str) -> None:
    await follow(session, ctx, col(Order.listing_id) == listing_id)


async def follow_buyer(session: AsyncSession, ctx: Ctx, account_id: str) -> None:
    await follow(session, ctx, col(Order.buyer_id) == account_id)


async def follow_order(session: AsyncSession, ctx: Ctx, order_id: str) -> None:
    await reconcile(session, ctx, order_id)


# -- the consumer's messages -----------------------------------------------------------


def _bad(code: str, reason: str, provider_pid: str | None = None, consumer_pid: str | None = None) -> DspError:
    return DspError(400, code, reason, error_type=ERROR, provider_pid=provider_pid, consumer_pid=consumer_pid)


def _text(body: dict[str, Any], name: str, pids: tuple[str | None, str | None] = (None, None)) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad("bad-request", f"'{name}' is required (a string)", *pids)
    return value


async def request(session: AsyncSession, ctx: Ctx, caller: Caller, body: Any) -> tuple[DspTransfer, dict[str, Any]]:
    """A ``TransferRequestMessage``: the process (new, or the one its consumerPid already
    names) and its answer (the process as it was requested)."""
    body = envelope(body, "TransferRequestMessage", ERROR)
    consumer_pid = str(body["consumerPid"])
    pids = (None, consumer_pid)
    agreement, format_, callback = (_text(body, "agreementId", pids), _text(body, "format", pids),
                                    _text(body, "callbackAddress", pids))
    existing = (await session.execute(select(DspTransfer).where(
        col(DspTransfer.account_id) == caller.id, col(DspTransfer.consumer_pid) == consumer_pid))).scalar_one_or_none()
    order_id = parse_agreement_id(agreement)
    if existing is not None:
        if existing.order_id != order_id:
            raise _bad("consumer-pid-taken", "this consumerPid already names a transfer of another agreement", *pids)
        return existing, process(existing)
    if format_ != HTTP_PULL:
        raise _bad("unsupported-format", f"the only format is {HTTP_PULL}", *pids)
    if body.get("dataAddress") is not None:
        raise _bad("push-not-supported", "push transfers are not offered: send no dataAddress and pull", *pids)
    if not callback.startswith(("https://", "http://")):
        raise _bad("bad-request", "'callbackAddress' must be an http(s) URL", *pids)
    negotiation = None if order_id is None else (await session.execute(select(DspNegotiation).where(
        col(DspNegotiation.order_id) == order_id, col(DspNegotiation.account_id) == caller.id))).scalar_one_or_none()
    if negotiation is None or negotiation.status != NegotiationState.FINALIZED:
        raise _bad("unknown-agreement", "no finalized agreement of this participant has that id", *pids)
    assert order_id is not None
    order = await session.get_one(Order, order_id)
    try:
        delivery.check_download(order)
    except DomainError as exc:
        raise from_domain(exc, ERROR, consumer_pid=consumer_pid) from exc
    row = DspTransfer(id=new_id("dtp"), consumer_pid=consumer_pid, account_id=caller.id,
                      negotiation_id=negotiation.id, order_id=order_id, status=P.REQUESTED,
                      callback_address=callback, created_at=ctx.now, updated_at=ctx.now)
    try:
        async with session.begin_nested():
            await DSP_TRANSFER.create(session, row, ctx, {})
    except IntegrityError:  # the same consumerPid sent twice at once: the first one's process
        again = (await session.execute(select(DspTransfer).where(
            col(DspTransfer.account_id) == caller.id, col(DspTransfer.consumer_pid) == consumer_pid))).scalar_one()
        return again, process(again)
    await steps.transfer(session, ctx, row, "requested", "consumer", agreement=agreement, format=format_)
    answer = process(row)
    blocked = await _blocked(session, ctx, order)
    if blocked is not None:
        await _terminate(session, ctx, row, "provider", blocked[0].kind, blocked[0].detail)
    else:
        try:
            async with session.begin_nested():
                await reconcile(session, ctx, order_id)
        except Conflict:
            log.info("another transfer of the agreement started meanwhile; this one waits", transfer=row.id)
    return row, answer


async def load(session: AsyncSession, caller: Caller, provider_pid: str, consumer_pid: str | None = None) -> DspTransfer:
    """The caller's transfer, or 404 (unknown, or another party's)."""
    row = await session.get(DspTransfer, provider_pid)
    if row is None or row.account_id != caller.id:
        raise DspError(404, "not-found", "no such process for this participant", error_type=ERROR,
                       provider_pid=provider_pid, consumer_pid=consumer_pid)
    return row


async def message(session: AsyncSession, ctx: Ctx, caller: Caller, provider_pid: str, kind: str, body: Any) -> None:
    """The consumer's start, completion, suspension or termination of its transfer; an
    invalid transition is ``400`` and changes nothing."""
    types = {"start": "TransferStartMessage", "completion": "TransferCompletionMessage",
             "suspension": "TransferSuspensionMessage", "termination": "TransferTerminationMessage"}
    consumer_pid = body.get("consumerPid") if isinstance(body, dict) and isinstance(body.get("consumerPid"), str) \
        else None
    row = await load(session, caller, provider_pid, consumer_pid)
    pids = (row.id, row.consumer_pid)
    body = envelope(body, types[kind], ERROR, pids)
    if body.get("providerPid") != row.id or body.get("consumerPid") != row.consumer_pid:
        raise _bad("bad-request", "providerPid and consumerPid must be this process's", *pids)
    code = body.get("code") if isinstance(body.get("code"), str) else None
    reasons = body.get("reason")
    reason = str(reasons[0])[:500] if isinstance(reasons, list) and reasons else None
    try:
        if kind == "start":
            await _resume(session, ctx, row)
        elif kind == "suspension":
            await _suspend(session, ctx, row, "consumer", code, reason)
        elif kind == "completion":
            await _complete(session, ctx, row, "consumer")
            await reconcile(session, ctx, row.order_id)
        else:
            await _terminate(session, ctx, row, "consumer", code, reason)
            await reconcile(session, ctx, row.order_id)
    except DomainError as exc:
        raise from_domain(exc, ERROR, *pids) from exc


async def _resume(session: AsyncSession, ctx: Ctx, row: DspTransfer) -> None:
    """The consumer starts again what it suspended: a new token, a new start message."""
    pids = (row.id, row.consumer_pid)
    DSP_TRANSFER.check(row, "start")
    if row.status != P.SUSPENDED or row.suspended_by != "consumer":
        raise _bad("invalid-transition", f"transfer {row.id} is {row.status}; only a transfer the consumer "
                   "suspended is started again by it", *pids)
    blocked = await _blocked(session, ctx, await session.get_one(Order, row.order_id))
    if blocked is not None:
        raise _bad(blocked[0].kind, blocked[0].detail, *pids)
    await _start(session, ctx, row, "consumer")


# -- the data endpoint -------------------------------------------------------------------


async def delivered(services: Services, provider_pid: str, token_sha256: str, root: str) -> None:
    """A whole download under ``provider_pid``'s token was sent to its end: the provider
    completes the transfer (if it still runs under that token) and the next one starts."""
    ctx = Ctx.system(services)
    async with services.sessionmaker() as session:
        try:
            row = await session.get(DspTransfer, provider_pid)
            if row is None or row.status != P.STARTED or row.token_sha256 != token_sha256:
                return
            with root_of_request(root):
                await _complete(session, ctx, row, "provider")
                await reconcile(session, ctx, row.order_id)
            await session.commit()
        except Conflict as exc:
            await session.rollback()
            log.warning("a delivered transfer moved meanwhile", transfer=provider_pid, error=exc.detail)
            return
        except BaseException:
            await session.rollback()
            raise
    callbacks.wake(services)


__all__ = ["ERROR", "delivered", "follow_asset", "follow_buyer", "follow_listing", "follow_order", "load",
           "message", "process", "reconcile", "request", "root_of_request", "token_hash"]
