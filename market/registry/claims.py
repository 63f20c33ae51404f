"""Ownership claims (DESIGN §4.1): the document a provider signs over its asset's
newest content, the automatic gates, and submission for review.

The claim is kept on the revision it claims, never over the registered one: a change
under review (or rejected) leaves the registration's rights, claim, key, signature and
content exactly as they were. On the ledger a claim is its ``document_sha256`` with the
signature and key id (docs/LEDGER.md §2); the document itself is in the certificate.
"""

import json
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import signatures
from market.core import audit, outbox, signing
from market.core.context import Ctx
from market.core.errors import Unprocessable
from market.core.events import AttemptRefused
from market.core.types import rfc3339
from market.registry import access
from market.registry.assets import commitment_of, conflicts, revision
from market.registry.models import Asset, AssetRevision
from market.registry.states import ASSET, RIGHTS, S

CLAIM_TYPE = "ownership-claim"
CLAIM_FIELDS = frozenset({"type", "v", "market", "asset", "provider", "commitment", "rights", "source", "issued_at"})


def parse_rights(text: str | None) -> list[str]:
    if text is None:
        return list(RIGHTS)
    wanted = [r.strip() for r in text.split(",") if r.strip()]
    unknown = sorted(set(wanted) - set(RIGHTS))
    if unknown or not wanted:
        raise Unprocessable(f"rights must be some of {', '.join(RIGHTS)}; got {text!r}", kind="bad-rights")
    return [r for r in RIGHTS if r in wanted]


def _gates(asset: Asset) -> None:
    """Automatic gates at submission, each a 422 of its own type."""
    if asset.grade == "core":
        raise Unprocessable("core data (核心数据) cannot be registered for trading", kind="core-data-refused")
    if asset.personal_info == "identifiable" and not asset.legal_basis:
        raise Unprocessable("identifiable personal information needs a declared legal basis",
                            kind="legal-basis-required")
    if asset.content_revision <= asset.registered_revision:
        what = "new content" if asset.status == S.registered else "content"
        raise Unprocessable(f"upload {what} before claiming it", kind="no-content")


def _submit_action(asset: Asset) -> str:
    return "submit_change" if asset.status == S.registered else "submit"


async def _claimable(session: AsyncSession, ctx: Ctx, asset_id: str) -> tuple[Asset, str, AssetRevision]:
    asset = await access.load_for_holder(session, asset_id, ctx.user)
    action = _submit_action(asset)
    ASSET.check(asset, action)
    _gates(asset)
    rev = await revision(session, asset)
    assert rev is not None  # _gates saw a revision newer than the registered one
    return asset, action, rev


async def claim_to_sign(session: AsyncSession, ctx: Ctx, asset_id: str, rights: list[str]) -> dict[str, Any]:
    asset, _, rev = await _claimable(session, ctx, asset_id)
    document = {
        "type": CLAIM_TYPE, "v": 1, "market": ctx.market, "asset": asset.id, "provider": asset.provider_id,
        "commitment": commitment_of(rev), "rights": rights, "source": asset.source, "issued_at": rfc3339(ctx.now),
    }
    shaped = signing.to_sign(document)
    return {"claim": shaped["document"], "signing_bytes": shaped["signing_bytes"]}


async def submit_claim(
    session: AsyncSession, ctx: Ctx, asset_id: str, signing_bytes: str, key_id: str, signature: str
) -> Asset:
    asset, action, rev = await _claimable(session, ctx, asset_id)
    raw, claim = signing.open_document(signing_bytes, doc_type=CLAIM_TYPE, market=ctx.market, fields=CLAIM_FIELDS)
    if not signing.same([claim.get("asset"), claim.get("provider")], [asset.id, asset.provider_id]):
        raise Unprocessable("the claim names another asset or provider", kind="altered-document")
    if not signing.same([claim.get("commitment"), claim.get("source")], [commitment_of(rev), asset.source]):
        raise Unprocessable("the claim does not match the asset's current content and source; fetch a new one",
                            kind="claim-not-current")
    rights = claim.get("rights")
    if not isinstance(rights, list) or not rights or rights != [r for r in RIGHTS if r in rights]:
        raise Unprocessable("the claim's rights are not a canonical list of holding, use, operation",
                            kind="altered-document")
    signing.check_fresh(claim, ctx.now, kind="stale-document")
    await signatures.verify_party_signature(session, asset.provider_id, key_id, signature, raw)
    # The claim is kept on its revision (and nowhere else): the registered revision's
    # claim stays as it was whatever happens to this one.
    rev.claim, rev.rights, rev.claim_key_id, rev.claim_signature = raw.decode(), json.dumps(rights), key_id, signature
    rev.claimed_at = ctx.now
    session.add(rev)
    await session.flush()
    change = action == "submit_change"
    # Before notice the asset is not public: ids, hashes and the signature only.
    salted = await audit.salted(session, ASSET.subject(asset), ASSET.entry_type(action),
                                {"revision": rev.revision, "conflicts": len(await conflicts(session, asset))})
    await ASSET.move(session, asset, action, ctx,
                     {"document_sha256": audit.document_digest(claim), "key_id": key_id, "signature": signature,
                      "revision": rev.revision, "change": change, "conflicts_salted_sha256": salted},
                     submitted_at=ctx.now, updated_at=ctx.now, status_reason=None)
    await outbox.to_role(session, ctx, "asset.review_requested", outbox.OPERATORS, asset.id, asset=asset.id,
                        provider=asset.provider_id, change=change, revision=rev.revision)
    return asset


async def keep_core_data_refusal(session: AsyncSession, ctx: Ctx, asset_id: str, detail: str) -> None:
    """Keep a refused attempt to register core data for the regulator (the attempt's own
    transaction is rolled back; this one commits the refusal alone)."""
    await session.rollback()
    await ctx.services.events.publish(session, ctx, AttemptRefused(kind="core-data-refused", account_id=ctx.user.id,
                                                                   asset_id=asset_id, detail=detail))
    await session.commit()
