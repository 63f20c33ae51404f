"""Transfer of the holding right (转移, DESIGN §4.1): the holder signs a holding-transfer
document naming a verified provider, the receiver countersigns, the holder changes and
a new certificate is issued under the same registration number."""

import json
from typing import Any

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from market import audit, signing
from market.accounts.models import Account
from market.accounts.schemas import AccountStatus, Role
from market.errors import Conflict, Forbidden, InvalidTransition, NotFound, Unprocessable
from market.ids import new_id
from market.registry.models import Asset, Transfer
from market.registry.service import (
    TRANSFER_ACCEPT_WINDOW,
    TRANSFER_FIELDS,
    TRANSFER_TYPE,
    Ctx,
    S,
    _issue_certificate,
    _subject,
    _transition,
    commitment_of,
    load_owned,
    revision,
)
from market.types import rfc3339


async def _transfer_target(session: AsyncSession, to: str) -> Account:
    target = await session.get(Account, to)
    if target is None or target.status != AccountStatus.verified or target.suspended or \
            Role.provider not in target.role_set:
        raise Unprocessable(f"{to} is not a verified provider account", kind="bad-transfer-target")
    return target


async def transfer_to_sign(session: AsyncSession, ctx: Ctx, asset_id: str, to: str) -> dict[str, Any]:
    asset = await load_owned(session, asset_id, ctx.caller)
    if asset.status != S.registered:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "transfer")
    if to == ctx.caller.id:
        raise Unprocessable("cannot transfer to oneself", kind="bad-transfer-target")
    await _transfer_target(session, to)
    rev = await revision(session, asset, asset.registered_revision)
    assert rev is not None
    document = {
        "type": TRANSFER_TYPE, "v": 1, "market": ctx.market, "asset": asset.id,
        "registration_number": asset.registration_number, "from": ctx.caller.id, "to": to,
        "right": "holding", "commitment": commitment_of(rev), "issued_at": rfc3339(ctx.now),
    }
    return signing.to_sign(document)


async def propose_transfer(
    session: AsyncSession, ctx: Ctx, asset_id: str, signing_bytes: str, key_id: str, signature: str
) -> Transfer:
    asset = await load_owned(session, asset_id, ctx.caller)
    if asset.status != S.registered:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "transfer")
    if asset.frozen:
        raise Forbidden(f"asset {asset_id} is frozen", kind="asset-frozen")
    raw, document = signing.open_document(signing_bytes, doc_type=TRANSFER_TYPE, market=ctx.market,
                                          fields=TRANSFER_FIELDS)
    if not signing.same(document.get("right"), "holding"):
        raise Unprocessable("a transfer moves the holding right and must say so", kind="altered-document")
    rev = await revision(session, asset, asset.registered_revision)
    assert rev is not None
    if not signing.same([document.get("asset"), document.get("from"), document.get("registration_number"),
                         document.get("commitment")],
                        [asset.id, ctx.caller.id, asset.registration_number, commitment_of(rev)]):
        raise Unprocessable("the transfer names another asset, holder or content", kind="altered-document")
    to = document.get("to")
    if not isinstance(to, str) or to == ctx.caller.id:
        raise Unprocessable("the transfer names no other party", kind="altered-document")
    await _transfer_target(session, to)
    signing.check_fresh(document, ctx.now)
    await signing.verify_party_signature(session, ctx.caller.id, key_id, signature, raw)
    transfer = Transfer(id=new_id("trf"), asset_id=asset.id, from_id=ctx.caller.id, to_id=to, document=raw.decode(),
                        from_key_id=key_id, from_signature=signature, status="proposed", created_at=ctx.now)
    session.add(transfer)
    await session.flush()
    await audit.record(session, "asset.transfer_proposed", _subject(asset.id), ctx.caller.id,
                       {"transfer": transfer.id, "document": document, "key_id": key_id, "signature": signature})
    return transfer


async def accept_transfer(session: AsyncSession, ctx: Ctx, transfer_id: str, key_id: str, signature: str) -> Transfer:
    transfer = await session.get(Transfer, transfer_id)
    if transfer is None or (ctx.caller.id not in (transfer.to_id, transfer.from_id) and not ctx.caller.is_staff):
        raise NotFound(f"no transfer {transfer_id}")
    if ctx.caller.id != transfer.to_id:
        raise Forbidden("only the receiving party accepts a transfer", kind="not-recipient")
    ctx.caller.require_verified()
    if transfer.status != "proposed":
        raise InvalidTransition(f"transfer {transfer_id}", transfer.status, "accepting")
    if ctx.now - transfer.created_at > TRANSFER_ACCEPT_WINDOW:
        raise Unprocessable("the transfer was proposed more than 7 days ago; ask for a new one", kind="stale-document")
    asset = await session.get(Asset, transfer.asset_id)
    assert asset is not None
    if asset.provider_id != transfer.from_id or asset.frozen:
        raise Conflict("the asset changed hands or was frozen since the proposal", kind="concurrent-update")
    rev = await revision(session, asset, asset.registered_revision)
    if rev is None or not signing.same(json.loads(transfer.document)["commitment"], commitment_of(rev)):
        raise Conflict("the asset's registered content changed since the proposal; ask for a new one",
                       kind="concurrent-update")
    await signing.verify_party_signature(session, ctx.caller.id, key_id, signature, transfer.document.encode())
    result = await session.execute(
        update(Transfer).where(Transfer.id == transfer_id, Transfer.status == "proposed")  # type: ignore[arg-type]
        .values(status="completed", to_key_id=key_id, to_signature=signature, completed_at=ctx.now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"transfer {transfer_id} changed meanwhile", kind="concurrent-update")
    await _transition(session, asset, "transfer", ctx.caller.id, "asset.holder_changed",
                      {"transfer": transfer_id, "from": transfer.from_id, "to": transfer.to_id,
                       "document": json.loads(transfer.document),
                       "signatures": [{"account": transfer.from_id, "key_id": transfer.from_key_id,
                                       "signature": transfer.from_signature},
                                      {"account": transfer.to_id, "key_id": key_id, "signature": signature}]},
                      provider_id=transfer.to_id, updated_at=ctx.now)
    await _issue_certificate(session, asset, ctx.market, "asset.transferred", ctx.caller.id, ctx.now,
                             {"transfer": transfer_id})
    await session.refresh(transfer)
    return transfer


def transfer_read(t: Transfer) -> dict[str, Any]:
    return {"id": t.id, "asset_id": t.asset_id, "from_id": t.from_id, "to_id": t.to_id, "status": t.status,
            "document": json.loads(t.document), "created_at": t.created_at, "completed_at": t.completed_at}

