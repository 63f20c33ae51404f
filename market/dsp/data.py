"""The data endpoint of a pull transfer: ``GET …/transfers/<providerPid>/data`` with the
transfer's current token (``Authorization: Bearer``) sends what ``/v1/orders/{id}/content``
sends the order's buyer — the same code path: ranges, ``Repr-Digest``, ``ETag``, the
delivery receipts on the ledger. Any other token, or none, and any transfer not STARTED,
gets ``401`` ``invalid-transfer-token``. A whole download sent to its end completes the
transfer (``market.dsp.transfers.delivered``); a transfer suspended, completed or terminated
while its download runs stops that download at the next re-check of access."""

import secrets
from typing import Any

from litestar import Request, get
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.context import Ctx
from market.core.errors import NotAuthenticated
from market.core.services import Services
from market.dsp import transfers
from market.dsp.models import DspTransfer
from market.dsp.protocol import BASE
from market.dsp.states import TransferState
from market.trading import delivery
from market.trading.delivery_routes import CONTENT_RESPONSES, DeliveryStream
from market.web.auth import Caller, bearer_token
from market.web.credentials import AccountSnapshot
from market.web.links import public_base


async def _by_token(session: AsyncSession, provider_pid: str, token: str | None) -> DspTransfer | None:
    """The STARTED transfer ``provider_pid`` if ``token`` is its current one."""
    if not token:
        return None
    row = await session.get(DspTransfer, provider_pid)
    if row is None or row.status != TransferState.STARTED or row.token_sha256 is None \
            or not secrets.compare_digest(row.token_sha256, transfers.token_hash(token)):
        return None
    return row


async def _still_started(services: Services, provider_pid: str, token_sha256: str) -> str | None:
    """Why a download under ``provider_pid``'s token must stop now, or None: the transfer
    read afresh (suspended, completed, terminated, or started again with a new token)."""
    async with services.read_sessionmaker() as session:
        row = await session.get(DspTransfer, provider_pid)
    if row is None:
        return f"transfer {provider_pid} is gone"
    if row.status != TransferState.STARTED or row.token_sha256 != token_sha256:
        again = " with a new token" if row.status == TransferState.STARTED else ""
        return f"transfer {provider_pid} is {row.status}{again}"
    return None


async def open_pull(db: AsyncSession, services: Services, provider_pid: str, token: str | None,
                    range_: str | None, if_range: str | None, root: str) -> delivery.Sending:
    """The download of a started transfer under its current ``token``, opened (``401``
    otherwise): the order's own delivery, which also stops once the transfer is no longer
    started under that token, and whose whole download completes the transfer."""
    row = await _by_token(db, provider_pid, token)
    if row is None or row.token_sha256 is None:
        raise NotAuthenticated("this needs the current token of a started transfer, sent as "
                               "'Authorization: Bearer <token>'", kind="invalid-transfer-token")
    buyer = await db.get_one(Account, row.account_id)
    ctx = Ctx.of(services, Caller(account=AccountSnapshot.of(buyer), token_id=f"transfer:{row.id}"))
    sending = await delivery.open_delivery(db, ctx, row.order_id, None, range_, if_range)
    pid, used = row.id, row.token_sha256

    async def completed() -> None:
        await transfers.delivered(services, pid, used, root)

    async def still() -> str | None:
        return await _still_started(services, pid, used)

    sending.on_whole, sending.still = completed, still
    await db.rollback()  # no transaction is held while the body streams
    await sending.start()
    return sending


@get(f"{BASE}/transfers/{{provider_pid:str}}/data", tags=["dataspace protocol"],
     media_type="application/octet-stream", responses=CONTENT_RESPONSES,
     summary="The content of a started pull transfer (its token); Range supported")
async def transfer_data(request: Request[Any, Any, Any], services: Services, db: AsyncSession,
                        provider_pid: str) -> DeliveryStream:
    sending = await open_pull(db, services, provider_pid, bearer_token(request.headers.get("authorization")),
                              request.headers.get("range"), request.headers.get("if-range"), public_base(request))
    return DeliveryStream(sending, status_code=206 if sending.partial else 200, headers=sending.headers(),
                          media_type="application/octet-stream")
