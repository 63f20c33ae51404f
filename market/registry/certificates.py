"""Registration certificates (数据资产登记证书, DESIGN §4.1; docs/LEDGER.md §6): the document,
its ledger entry, and the bundle that verifies offline."""

import base64
import json
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import canonical as canonical_entry
from ledger.log import Log, SignedCheckpoint
from ledger.proofs import NotFoundError as ProofNotFound
from market.accounts.models import Account, AccountKey
from market.core import audit, signing
from market.core.context import Ctx
from market.core.errors import InvalidTransition
from market.core.types import rfc3339
from market.registry.access import holds_registration
from market.registry.assets import commitment_of, revision
from market.registry.models import Asset, Transfer

CERTIFICATE_TYPE = "data-asset-registration-certificate"
REVOCATION_TYPE = "data-asset-registration-revocation"
# A bundle's checkpoint is the one this process holds when it is at most this old (the
# refresh round reads a new one every MARKET_LEDGER_INTEGRATE_INTERVAL) and covers the
# entry; else it is read with the bundle. Either proves the entry.
REMEMBERED_CHECKPOINT_AGE = 1.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _time(value: Any) -> str | None:
    return rfc3339(value) if value else None


class Holder(Protocol):
    """What ``holder_of`` reads of an account."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def uscc(self) -> str | None: ...


def holder_of(account: Holder) -> dict[str, Any]:
    """How a certificate names its holder: an organisation by name and code, a person
    by account id only (no personal data in a document whose hash is on the ledger)."""
    if account.kind == "individual":
        return {"id": account.id, "kind": account.kind}
    return {"id": account.id, "kind": account.kind, "name": account.name, "uscc": account.uscc}


async def certificate_document(session: AsyncSession, asset: Asset, ctx: Ctx,
                               transfer: Transfer | None = None) -> dict[str, Any]:
    """The certificate of the registration that stands: the registered revision's
    content, claim and rights; with the transfer document and both signatures when the
    holding right moved."""
    holder = await session.get(Account, asset.provider_id)
    rev = await revision(session, asset, asset.registered_revision)
    assert holder is not None and rev is not None and rev.claim is not None
    key = await session.get(AccountKey, rev.claim_key_id) if rev.claim_key_id else None
    document: dict[str, Any] = {
        "type": CERTIFICATE_TYPE, "v": 1, "market": ctx.market,
        "registration_number": asset.registration_number,
        "asset": {"id": asset.id, "title": asset.title, "category": asset.category, "grade": asset.grade},
        "holder": holder_of(holder),
        "rights": json.loads(rev.rights or "[]"),
        "commitment": commitment_of(rev),
        "claim": json.loads(rev.claim),
        "claim_signature": {"alg": "Ed25519", "key_id": rev.claim_key_id,
                            "public_key": key.public_key if key else None, "value": rev.claim_signature},
        "submitted_at": _time(rev.claimed_at),
        "notice_started_at": _time(asset.notice_started_at),
        "registered_at": _time(asset.registered_at),
        "issued_at": rfc3339(ctx.now),
    }
    if transfer is not None:
        document["transfer"] = {
            "id": transfer.id, "document": json.loads(transfer.document),
            "signatures": [{"account": transfer.from_id, "key_id": transfer.from_key_id,
                            "value": transfer.from_signature},
                           {"account": transfer.to_id, "key_id": transfer.to_key_id, "value": transfer.to_signature}],
        }
    return document


async def issue(session: AsyncSession, asset: Asset, ctx: Ctx, entry_type: str, extra: dict[str, Any],
                transfer: Transfer | None = None) -> None:
    """Write a new certificate and its ledger entry (``document_sha256``) in this transaction."""
    document = await certificate_document(session, asset, ctx, transfer)
    entry = await audit.record(session, ctx, entry_type, f"asset:{asset.id}", ctx.actor, {
        "registration_number": asset.registration_number, "holder": asset.provider_id,
        "revision": asset.registered_revision, "commitment_sha256": document["commitment"]["sha256"],
        "document_sha256": audit.document_digest(document), **extra,
    })
    asset.certificate = signing.canonical(document).decode()
    asset.certificate_leaf = canonical_entry(entry)
    session.add(asset)
    await session.flush()


async def bundle(session: AsyncSession, log: Log, subject: str, document_json: str, leaf: bytes) -> dict[str, Any]:
    """``{"document", "ledger"}`` for a document whose entry ``leaf`` was appended about ``subject``.

    While the entry waits for integration, ``index`` is null and there is no
    checkpoint or proof (a verifier reports it as pending).
    """
    ledger: dict[str, Any] = {"index": None, "leaf": _b64(leaf), "checkpoint": None, "inclusion_proof": None,
                              "vkey": log.vkey}
    index = await log.index_of(session, subject, leaf)
    if index is not None:
        checkpoint, proof = await _proved(session, log, index)
        ledger.update(index=index, checkpoint=checkpoint.text, inclusion_proof=[_b64(h) for h in proof])
    return {"document": json.loads(document_json), "ledger": ledger}


async def _proved(session: AsyncSession, log: Log, index: int) -> tuple[SignedCheckpoint, list[bytes]]:
    """A signed checkpoint covering entry ``index`` and the entry's inclusion proof in it:
    the checkpoint this process holds when it is fresh and covers the entry, else the one
    ``session`` reads (also when the session's transaction began before the held one's
    tiles were written, and so cannot prove against it)."""
    held = log.remembered(index, REMEMBERED_CHECKPOINT_AGE)
    if held is not None:
        try:
            return held, (await log.inclusion_proof(session, index, held.size))[1]
        except ProofNotFound:
            pass
    checkpoint = await log.checkpoint(session)
    return checkpoint, (await log.inclusion_proof(session, index, checkpoint.size))[1]


def revocation_document(asset: Asset, ctx: Ctx, reason_salted_sha256: str) -> dict[str, Any]:
    """The revocation of a registration: it names the revoked certificate by its
    document hash, so whoever holds that certificate can check it was revoked. The
    reason is named by the digest of its salted document (``audit.salted``)."""
    revoked = json.loads(asset.certificate) if asset.certificate else None
    return {
        "type": REVOCATION_TYPE, "v": 1, "market": ctx.market,
        "registration_number": asset.registration_number,
        "asset": {"id": asset.id, "title": asset.title, "category": asset.category, "grade": asset.grade},
        "revoked_certificate_sha256": audit.document_digest(revoked) if revoked is not None else None,
        "revoked_at": rfc3339(ctx.now), "reason_salted_sha256": reason_salted_sha256,
        "actor": ctx.actor,
    }


def keep_revocation(asset: Asset, document: dict[str, Any], entry: dict[str, Any]) -> None:
    """After revocation the asset's certificate columns hold the revocation document and
    its ``asset.revoked`` entry (the old certificate's hash is inside the document)."""
    asset.certificate = signing.canonical(document).decode()
    asset.certificate_leaf = canonical_entry(entry)


def _is_revocation(asset: Asset) -> bool:
    return asset.certificate is not None and json.loads(asset.certificate).get("type") == REVOCATION_TYPE


async def registration_certificate(session: AsyncSession, log: Log, asset: Asset) -> dict[str, Any]:
    """The certificate of the standing registration, or for a revoked one its revocation."""
    revoked = asset.status == "revoked" and _is_revocation(asset)
    if (not holds_registration(asset) and not revoked) or asset.certificate is None or asset.certificate_leaf is None:
        raise InvalidTransition(f"asset {asset.id}", asset.status, "a registration certificate")
    return await bundle(session, log, f"asset:{asset.id}", asset.certificate, bytes(asset.certificate_leaf))
