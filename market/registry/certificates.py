"""Registration certificate bundles (LEDGER.md §6): the document and its ledger proof."""

import base64
import json
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.log import Log
from market.errors import InvalidTransition
from market.registry.models import Asset
from market.registry.service import holds_registration


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def bundle(session: AsyncSession, log: Log, subject: str, document_json: str, leaf: bytes) -> dict[str, Any]:
    """``{"document", "ledger"}`` for a document whose entry ``leaf`` was appended about ``subject``.

    While the entry waits for integration, ``index`` is null and there is no
    checkpoint or proof (a verifier reports it as pending).
    """
    ledger: dict[str, Any] = {"index": None, "leaf": _b64(leaf), "checkpoint": None, "inclusion_proof": None,
                              "vkey": log.vkey}
    index = await log.index_of(session, subject, leaf)
    if index is not None:
        checkpoint = await log.checkpoint(session)
        _, proof = await log.inclusion_proof(session, index, checkpoint.size)
        ledger.update(index=index, checkpoint=checkpoint.text, inclusion_proof=[_b64(h) for h in proof])
    return {"document": json.loads(document_json), "ledger": ledger}


async def registration_certificate(session: AsyncSession, log: Log, asset: Asset) -> dict[str, Any]:
    if not holds_registration(asset) or asset.certificate is None or asset.certificate_leaf is None:
        raise InvalidTransition(f"asset {asset.id}", asset.status, "a registration certificate")
    return await bundle(session, log, f"asset:{asset.id}", asset.certificate, bytes(asset.certificate_leaf))
