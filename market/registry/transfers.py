"""Transfer of the holding right (转移, DESIGN §4.1): the holder signs a holding-transfer
document naming a verified provider, the receiver countersigns, the holder changes and
a new certificate is issued under the same registration number.

A proposal is void once the key that signed it is revoked, or the asset changes hands,
content, or standing (cancelled, revoked, frozen); its proposer may withdraw it. Two
acceptances racing for one asset end with one winner: both move the asset's row, and
the second finds its version changed (409).
"""

import json
from datetime import timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import signatures
from market.accounts.models import Account
from market.accounts.schemas import AccountStatus, Role
from market.core import audit, signing
from market.core.context import Ctx
from market.core.errors import Conflict, Forbidden, Unprocessable
from market.core.ids import new_id
from market.core.types import rfc3339
from market.registry import access, certificates
from market.registry.assets import commitment_of, revision
from market.registry.models import Asset, Transfer
from market.registry.states import ASSET, TRANSFER, TransferStatus

TRANSFER_TYPE = "holding-transfer"
TRANSFER_ACCEPT_WINDOW = timedelta(days=7)
TRANSFER_FIELDS = frozenset({"type", "v", "market", "asset", "registration_number", "from", "to", "right",
                             "commitment", "issued_at"})


async def _transfer_target(session: AsyncSession, to: str) -> Account:
    target = await session.get(Account, to)
    if target is None or target.status != AccountStatus.verified or target.suspended or \
            Role.provider not in target.role_set:
        raise Unprocessable(f"{to} is not a verified provider account", kind="bad-transfer-target")
    return target


async def _transferable(session: AsyncSession, ctx: Ctx, asset_id: str) -> Asset:
    asset = await access.load_for_holder(session, asset_id, ctx.user)
    ASSET.check(asset, "transfer")
    return asset


async def transfer_to_sign(session: AsyncSession, ctx: Ctx, asset_id: str, to: str) -> dict[str, Any]:
    asset = await _transferable(session, ctx, asset_id)
    if to == asset.provider_id:
        raise Unprocessable("cannot transfer to oneself", kind="bad-transfer-target")
    await _transfer_target(session, to)
    rev = await revision(session, asset, asset.registered_revision)
    assert rev is not None
    document = {
        "type": TRANSFER_TYPE, "v": 1, "market": ctx.market, "asset": asset.id,
        "registration_number": asset.registration_number, "from": asset.provider_id, "to": to,
        "right": "holding", "commitment": commitment_of(rev), "issued_at": rfc3339(ctx.now),
    }
    return signing.to_sign(document)


async def propose_transfer(
    session: AsyncSession, ctx: Ctx, asset_id: str, signing_bytes: str, key_id: str, signature: str
) -> Transfer:
    asset = await _transferable(session, ctx, asset_id)
    raw, document = signing.open_document(signing_bytes, doc_type=TRANSFER_TYPE, market=ctx.market,
                                          fields=TRANSFER_FIELDS)
    if not signing.same(document.get("right"), "holding"):
        raise Unprocessable("a transfer moves the holding right and must say so", kind="altered-document")
    rev = await revision(session, asset, asset.registered_revision)
    assert rev is not None
    if not signing.same([document.get("asset"), document.get("from"), document.get("registration_number"),
                         document.get("commitment")],
                        [asset.id, asset.provider_id, asset.registration_number, commitment_of(rev)]):
        raise Unprocessable("the transfer names another asset, holder or content", kind="altered-document")
    to = document.get("to")
    if not isinstance(to, str) or to == asset.provider_id:
        raise Unprocessable("the transfer names no other party", kind="altered-document")
    await _transfer_target(session, to)
    signing.check_fresh(document, ctx.now)
    await signatures.verify_party_signature(session, asset.provider_id, key_id, signature, raw)
    transfer = Transfer(id=new_id("trf"), status=TRANSFER.initial, asset_id=asset.id, from_id=asset.provider_id,
                        to_id=to, document=raw.decode(), from_key_id=key_id, from_signature=signature,
                        created_at=ctx.now)
    await TRANSFER.create(session, transfer, ctx, {"transfer": transfer.id,
                                                    "document_sha256": audit.document_digest(document),
                                                    "key_id": key_id, "signature": signature})
    return transfer


async def accept_transfer(session: AsyncSession, ctx: Ctx, transfer_id: str, key_id: str, signature: str) -> Transfer:
    caller = ctx.user
    transfer = await access.load_transfer(session, transfer_id, caller)
    if caller.id != transfer.to_id:
        raise Forbidden("only the receiving party accepts a transfer", kind="not-recipient")
    caller.require_verified()
    TRANSFER.check(transfer, "accept")
    if ctx.now - transfer.created_at > TRANSFER_ACCEPT_WINDOW:
        raise Unprocessable("the transfer was proposed more than 7 days ago; ask for a new one", kind="stale-document")
    asset = await session.get(Asset, transfer.asset_id)
    assert asset is not None
    if asset.provider_id != transfer.from_id:
        raise Conflict("the asset changed hands since the proposal", kind="concurrent-update")
    ASSET.check(asset, "transfer")
    rev = await revision(session, asset, asset.registered_revision)
    if rev is None or not signing.same(json.loads(transfer.document)["commitment"], commitment_of(rev)):
        raise Conflict("the asset's registered content changed since the proposal; ask for a new one",
                       kind="concurrent-update")
    await signatures.verify_party_signature(session, caller.id, key_id, signature, transfer.document.encode())
    # The asset's row first: of racing acceptances the second waits here, then finds the
    # version changed (409), before it has touched any other row (no lock-order deadlock).
    await ASSET.move(session, asset, "transfer", ctx,
                     {"transfer": transfer_id, "from": transfer.from_id, "to": transfer.to_id,
                      "document_sha256": audit.document_digest(json.loads(transfer.document)),
                      "signatures": [{"account": transfer.from_id, "key_id": transfer.from_key_id,
                                      "signature": transfer.from_signature},
                                     {"account": transfer.to_id, "key_id": key_id, "signature": signature}]},
                     provider_id=transfer.to_id, updated_at=ctx.now)
    await TRANSFER.move(session, transfer, "accept", ctx, to_key_id=key_id, to_signature=signature,
                        completed_at=ctx.now)
    await certificates.issue(session, asset, ctx, "asset.transferred", {"transfer": transfer_id}, transfer)
    await void_pending(session, ctx, asset_id=asset.id, cause="changed_hands")
    return transfer


async def withdraw(session: AsyncSession, ctx: Ctx, transfer_id: str) -> Transfer:
    """The proposer takes its proposal back (DELETE /v1/transfers/{id})."""
    transfer = await access.load_transfer(session, transfer_id, ctx.user)
    if ctx.user.id != transfer.from_id:
        raise Forbidden("only the proposing holder withdraws a transfer", kind="not-proposer")
    await TRANSFER.move(session, transfer, "withdraw", ctx, {"transfer": transfer.id})
    return transfer


async def void_pending(session: AsyncSession, ctx: Ctx, *, asset_id: str | None = None, key_id: str | None = None,
                       cause: str) -> list[str]:
    """Void every proposed transfer of ``asset_id`` or signed with ``key_id``."""
    query = select(Transfer).where(Transfer.status == TransferStatus.proposed)
    if asset_id is not None:
        query = query.where(Transfer.asset_id == asset_id)
    if key_id is not None:
        query = query.where(Transfer.from_key_id == key_id)
    voided = []
    for transfer in (await session.exec(query.order_by(col(Transfer.id)))).all():
        await TRANSFER.move(session, transfer, "void", ctx, {"transfer": transfer.id, "cause": cause})
        voided.append(transfer.id)
    return voided


def transfer_read(t: Transfer) -> dict[str, Any]:
    return {"id": t.id, "asset_id": t.asset_id, "from_id": t.from_id, "to_id": t.to_id, "status": t.status,
            "document": json.loads(t.document), "created_at": t.created_at, "completed_at": t.completed_at}
