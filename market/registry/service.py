"""Registry rules (DESIGN §4.1): drafts, content, signed claims, review, public notice,
objections, registration, certificates and cancellation (transfers: ``transfers.py``). No HTTP.

The asset's life is a state machine kept as data (``TRANSITIONS``). ``_transition``
checks the table, updates the row with ``WHERE status = :from`` so that a race loses
cleanly (409), and appends the ledger entry in the same transaction.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.entry import canonical as canonical_entry
from market import audit, signing
from market.accounts.models import Account, AccountKey
from market.accounts.schemas import Role
from market.auth import Caller
from market.errors import Conflict, Forbidden, InvalidTransition, NotFound, Unprocessable
from market.ids import new_id
from market.pagination import page_of, paginate
from market.registry.models import Asset, AssetRevision, Objection, RegistrationCounter
from market.registry.schemas import (
    PENDING_OR_REGISTERED,
    PUBLIC_STATUSES,
    RIGHTS,
    AssetCreate,
    AssetRead,
    AssetStatus,
    AssetUpdate,
    Commitment,
    ObjectionRead,
)
from market.types import rfc3339

S = AssetStatus

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({S.draft}), S.submitted),
    "submit_change": (frozenset({S.registered}), S.submitted),
    "approve": (frozenset({S.submitted}), S.public_notice),
    "register": (frozenset({S.submitted, S.public_notice}), S.registered),
    "reject": (frozenset({S.submitted, S.public_notice}), S.rejected),
    "reject_change": (frozenset({S.submitted, S.public_notice}), S.registered),
    "cancel": (frozenset({S.registered}), S.cancelled),
    "revoke": (frozenset({S.registered}), S.revoked),
    "transfer": (frozenset({S.registered}), S.registered),
}

CLAIM_TYPE = "ownership-claim"
TRANSFER_TYPE = "holding-transfer"
CERTIFICATE_TYPE = "data-asset-registration-certificate"
TRANSFER_ACCEPT_WINDOW = timedelta(days=7)
CLAIM_FIELDS = frozenset({"type", "v", "market", "asset", "provider", "commitment", "rights", "source", "issued_at"})
TRANSFER_FIELDS = frozenset({"type", "v", "market", "asset", "registration_number", "from", "to", "right",
                             "commitment", "issued_at"})


@dataclass(frozen=True)
class Ctx:
    """What a registry operation needs besides the session: who, when, which market."""

    caller: Caller
    now: datetime
    market: str
    notice: timedelta


# -- reading and visibility -----------------------------------------------------


def _subject(asset_id: str) -> str:
    return f"asset:{asset_id}"


def holds_registration(asset: Asset) -> bool:
    """Registered, or registered with a change under review: the registration (its
    number, certificate and registered content) stands until a change replaces it."""
    return asset.status == S.registered or (asset.change and asset.status in (S.submitted, S.public_notice))


def is_public(asset: Asset) -> bool:
    return asset.status in PUBLIC_STATUSES or holds_registration(asset)


def _public_clause() -> Any:
    """SQL for ``is_public``."""
    return or_(Asset.status.in_([s.value for s in PUBLIC_STATUSES]),  # type: ignore[attr-defined]
               (Asset.change == True) & (Asset.status == S.submitted))  # type: ignore[arg-type]  # noqa: E712


def visible(asset: Asset, caller: Caller | None) -> bool:
    if is_public(asset):
        return True
    return caller is not None and (caller.id == asset.provider_id or caller.is_staff)


async def load(session: AsyncSession, asset_id: str, caller: Caller | None) -> Asset:
    """The asset if the caller may see it; 404 otherwise (never another party's draft)."""
    asset = await session.get(Asset, asset_id)
    if asset is None or not visible(asset, caller):
        raise NotFound(f"no asset {asset_id}")
    return asset


async def load_owned(session: AsyncSession, asset_id: str, caller: Caller) -> Asset:
    """The asset if the caller holds it. Staff and the public get 403/404, never a write."""
    asset = await load(session, asset_id, caller)
    if asset.provider_id != caller.id:
        if caller.is_staff or is_public(asset):
            raise Forbidden("only the asset's holder may do this", kind="not-owner")
        raise NotFound(f"no asset {asset_id}")
    return asset


async def revision(session: AsyncSession, asset: Asset, number: int | None = None) -> AssetRevision | None:
    number = asset.content_revision if number is None else number
    if number == 0:
        return None
    return await session.get(AssetRevision, (asset.id, number))


def commitment_of(rev: AssetRevision) -> dict[str, Any]:
    return {"sha256": rev.sha256, "size": rev.size, "merkle_root": rev.merkle_root, "chunk_size": rev.chunk_size,
            "revision": rev.revision}


def _claimed_hashes(asset: Asset) -> set[str]:
    """The content an asset claims: its registered revision, and while it is submitted
    or in notice, the revision under review."""
    hashes = {asset.registered_sha256} if asset.registered_sha256 and asset.status in PENDING_OR_REGISTERED else set()
    if asset.content_sha256 and asset.status in (S.submitted, S.public_notice):
        hashes.add(asset.content_sha256)
    return hashes


async def conflicts_of(session: AsyncSession, assets: list[Asset]) -> dict[str, list[str]]:
    """For each asset, other parties' assets that claim the same content (one query).

    An asset is compared by both its newest upload and its registered revision.
    """
    mine = {a.id: {h for h in (a.content_sha256, a.registered_sha256) if h} for a in assets}
    hashes = sorted(set().union(*mine.values())) if mine else []
    out: dict[str, list[str]] = {a.id: [] for a in assets}
    if not hashes:
        return out
    candidates = (await session.exec(
        select(Asset).where(or_(Asset.content_sha256.in_(hashes),  # type: ignore[union-attr]
                                Asset.registered_sha256.in_(hashes)))  # type: ignore[union-attr]
        .order_by(Asset.id)  # type: ignore[arg-type]
    )).all()
    # Index the candidates by the hashes they claim: one pass, not assets x candidates.
    claiming: dict[str, list[Asset]] = {}
    for other in candidates:
        for h in _claimed_hashes(other):
            claiming.setdefault(h, []).append(other)
    for asset in assets:
        found = {other.id for h in mine[asset.id] for other in claiming.get(h, ())
                 if other.provider_id != asset.provider_id and other.id != asset.id}
        out[asset.id] = sorted(found)
    return out


async def conflicts(session: AsyncSession, asset: Asset) -> list[str]:
    """Other parties' assets, pending or registered, claiming the same content."""
    return (await conflicts_of(session, [asset]))[asset.id]


async def read(session: AsyncSession, asset: Asset) -> AssetRead:
    return (await read_many(session, [asset]))[0]


async def read_many(session: AsyncSession, assets: list[Asset]) -> list[AssetRead]:
    """Response shapes for several assets in two queries (revisions, conflicts).

    ``commitment`` is the registered content once there is one (what buyers receive),
    else the newest upload; ``uploaded_commitment`` is the newest upload when it
    differs (a change in preparation or under review)."""
    keys = {(a.id, n) for a in assets for n in (a.content_revision, a.registered_revision) if n}
    revisions: dict[tuple[str, int], AssetRevision] = {}
    if keys:
        # By asset id (the primary key's prefix), the wanted revisions picked here: an
        # OR of (id, revision) pairs costs more to build than the few extra rows.
        rows = (await session.exec(select(AssetRevision).where(
            AssetRevision.asset_id.in_(sorted({asset_id for asset_id, _ in keys}))))).all()  # type: ignore[attr-defined]
        revisions = {(r.asset_id, r.revision): r for r in rows if (r.asset_id, r.revision) in keys}
    clashes = await conflicts_of(session, assets)
    out = []
    for asset in assets:
        shown = asset.registered_revision or asset.content_revision
        rev = revisions.get((asset.id, shown))
        newest = revisions.get((asset.id, asset.content_revision)) if asset.content_revision != shown else None
        out.append(AssetRead(
            id=asset.id, provider_id=asset.provider_id, title=asset.title, description=asset.description,
            category=asset.category, tags=json.loads(asset.tags), grade=asset.grade,
            personal_info=asset.personal_info, legal_basis=asset.legal_basis, export_allowed=asset.export_allowed,
            source=asset.source, format=asset.format, status=asset.status, status_reason=asset.status_reason,
            frozen=asset.frozen,
            registration_number=asset.registration_number,
            commitment=Commitment(**commitment_of(rev)) if rev else None,
            uploaded_commitment=Commitment(**commitment_of(newest)) if newest else None,
            registered_revision=asset.registered_revision, rights=json.loads(asset.rights),
            conflicts_with=clashes[asset.id], submitted_at=asset.submitted_at, notice_ends_at=asset.notice_ends_at,
            registered_at=asset.registered_at, created_at=asset.created_at, updated_at=asset.updated_at,
        ))
    return out


async def list_assets(
    session: AsyncSession, caller: Caller | None, *, status: str | None, provider: str | None, grade: str | None,
    category: str | None, limit: int, cursor: str | None,
) -> dict[str, Any]:
    query = select(Asset)
    if caller is None:
        query = query.where(_public_clause())
    elif not caller.is_staff:
        query = query.where(or_(_public_clause(), Asset.provider_id == caller.id))
    for column, value in ((Asset.status, status), (Asset.provider_id, provider), (Asset.grade, grade),
                          (Asset.category, category)):
        if value is not None:
            query = query.where(column == value)
    rows = list((await session.exec(paginate(query, Asset.id, limit, cursor))).all())
    page = page_of(rows, limit, lambda a: a)
    page["items"] = await read_many(session, page["items"])
    return page


# -- the state machine ------------------------------------------------------------


async def _transition(
    session: AsyncSession, asset: Asset, action: str, actor: str, entry_type: str, data: dict[str, Any],
    **values: Any,
) -> None:
    sources, target = TRANSITIONS[action]
    if asset.status not in sources:
        raise InvalidTransition(f"asset {asset.id}", asset.status, action.replace("_", " "))
    result = await session.execute(
        update(Asset).where(Asset.id == asset.id, Asset.status == asset.status)  # type: ignore[arg-type]
        .values(status=target, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"asset {asset.id} changed meanwhile; read it again", kind="concurrent-update")
    await audit.record(session, entry_type, _subject(asset.id), actor, data)
    await session.refresh(asset)


# -- drafts and content -------------------------------------------------------------


async def create(session: AsyncSession, ctx: Ctx, data: AssetCreate, wrapped_key: bytes, asset_id: str) -> Asset:
    ctx.caller.require(Role.provider)
    ctx.caller.require_verified()
    asset = Asset(
        id=asset_id, provider_id=ctx.caller.id, title=data.title, description=data.description,
        category=data.category, tags=json.dumps(data.tags, ensure_ascii=False), grade=data.grade,
        personal_info=data.personal_info, legal_basis=data.legal_basis, export_allowed=data.export_allowed,
        source=data.source, format=data.format, status=S.draft, wrapped_key=wrapped_key,
        created_at=ctx.now, updated_at=ctx.now,
    )
    session.add(asset)
    await session.flush()
    await audit.record(session, "asset.created", _subject(asset.id), ctx.caller.id,
                       {"provider": ctx.caller.id, "grade": asset.grade, "personal_info": asset.personal_info})
    return asset


async def update_draft(session: AsyncSession, ctx: Ctx, asset_id: str, data: AssetUpdate) -> Asset:
    asset = await load_owned(session, asset_id, ctx.caller)
    if asset.status != S.draft:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "editing")
    changes = data.model_dump(exclude_unset=True)
    if "tags" in changes:
        changes["tags"] = json.dumps(changes["tags"], ensure_ascii=False)
    result = await session.execute(
        update(Asset).where(Asset.id == asset_id, Asset.status == S.draft)  # type: ignore[arg-type]
        .values(**changes, updated_at=ctx.now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"asset {asset_id} changed meanwhile; read it again", kind="concurrent-update")
    await audit.record(session, "asset.updated", _subject(asset_id), ctx.caller.id, {"fields": sorted(changes)})
    await session.refresh(asset)
    return asset


UPLOADABLE = frozenset({S.draft, S.registered})


async def check_upload(session: AsyncSession, caller: Caller, asset_id: str) -> Asset:
    """May the caller upload content now? (Checked before the body is read.)"""
    asset = await load_owned(session, asset_id, caller)
    if asset.status not in UPLOADABLE:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "uploading content")
    if asset.frozen:
        raise Forbidden(f"asset {asset_id} is frozen", kind="asset-frozen")
    return asset


async def record_upload(
    session: AsyncSession, ctx: Ctx, asset_id: str, expected_revision: int, blob_id: str, stored: Any
) -> tuple[Asset, AssetRevision, str | None]:
    """After the blob is safely stored: make it the asset's newest revision.

    Returns the asset, the revision, and the blob id of a replaced, never-registered
    revision that the caller may now delete.
    """
    if stored.size == 0:  # every empty asset would claim the same content
        raise Unprocessable("the content is empty; a data asset holds at least one byte", kind="empty-content")
    asset = await check_upload(session, ctx.caller, asset_id)
    if asset.content_revision != expected_revision:
        raise Conflict("another upload finished first; upload again", kind="concurrent-update")
    old = await revision(session, asset)
    # Revision numbers never repeat: a rejected change leaves its revision on record.
    latest = (await session.exec(select(func.max(AssetRevision.revision)).where(AssetRevision.asset_id == asset_id))).one()
    number = (latest or 0) + 1
    rev = AssetRevision(asset_id=asset_id, revision=number, blob_id=blob_id, sha256=stored.sha256, size=stored.size,
                        merkle_root=stored.merkle_root, chunk_size=stored.chunk_size, created_at=ctx.now)
    session.add(rev)
    result = await session.execute(
        update(Asset).where(Asset.id == asset_id, Asset.content_revision == expected_revision,  # type: ignore[arg-type]
                            Asset.status == asset.status)
        .values(content_revision=number, content_sha256=stored.sha256, updated_at=ctx.now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("another upload finished first; upload again", kind="concurrent-update")
    await audit.record(session, "asset.content_uploaded", _subject(asset_id), ctx.caller.id, commitment_of(rev))
    await session.refresh(asset)
    replaced = old.blob_id if old is not None and old.revision > asset.registered_revision else None
    return asset, rev, replaced


# -- claims -------------------------------------------------------------------------


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
        raise Unprocessable("identifiable personal information needs a declared legal basis", kind="legal-basis-required")
    if asset.content_revision <= asset.registered_revision:
        what = "new content" if asset.status == S.registered else "content"
        raise Unprocessable(f"upload {what} before claiming it", kind="no-content")


def _submit_action(asset: Asset) -> str:
    if asset.status == S.registered:
        return "submit_change"
    return "submit"


async def claim_to_sign(session: AsyncSession, ctx: Ctx, asset_id: str, rights: list[str]) -> dict[str, Any]:
    asset = await load_owned(session, asset_id, ctx.caller)
    action = _submit_action(asset)
    if asset.status not in TRANSITIONS[action][0]:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "claiming")
    _gates(asset)
    rev = await revision(session, asset)
    assert rev is not None
    document = {
        "type": CLAIM_TYPE, "v": 1, "market": ctx.market, "asset": asset.id, "provider": ctx.caller.id,
        "commitment": commitment_of(rev), "rights": rights, "source": asset.source, "issued_at": rfc3339(ctx.now),
    }
    shaped = signing.to_sign(document)
    return {"claim": shaped["document"], "signing_bytes": shaped["signing_bytes"]}


async def submit_claim(
    session: AsyncSession, ctx: Ctx, asset_id: str, signing_bytes: str, key_id: str, signature: str
) -> Asset:
    asset = await load_owned(session, asset_id, ctx.caller)
    action = _submit_action(asset)
    if asset.status not in TRANSITIONS[action][0]:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "claiming")
    if asset.frozen:
        raise Forbidden(f"asset {asset_id} is frozen", kind="asset-frozen")
    _gates(asset)
    raw, claim = signing.open_document(signing_bytes, doc_type=CLAIM_TYPE, market=ctx.market, fields=CLAIM_FIELDS)
    if not signing.same([claim.get("asset"), claim.get("provider")], [asset.id, ctx.caller.id]):
        raise Unprocessable("the claim names another asset or provider", kind="altered-document")
    rev = await revision(session, asset)
    assert rev is not None
    if not signing.same([claim.get("commitment"), claim.get("source")], [commitment_of(rev), asset.source]):
        raise Unprocessable("the claim does not match the asset's current content and source; fetch a new one",
                            kind="claim-not-current")
    rights = claim.get("rights")
    if not isinstance(rights, list) or not rights or rights != [r for r in RIGHTS if r in rights]:
        raise Unprocessable("the claim's rights are not a canonical list of holding, use, operation",
                            kind="altered-document")
    signing.check_fresh(claim, ctx.now, kind="stale-document")
    await signing.verify_party_signature(session, ctx.caller.id, key_id, signature, raw)
    others = await conflicts(session, asset)
    await _transition(
        session, asset, action, ctx.caller.id, "asset.claim_submitted",
        {"claim": claim, "key_id": key_id, "signature": signature, "change": action == "submit_change",
         "conflicts_with": others},
        claim=raw.decode(), claim_key_id=key_id, claim_signature=signature, rights=json.dumps(rights),
        submitted_at=ctx.now, change=action == "submit_change", updated_at=ctx.now, status_reason=None,
    )
    return asset


# -- review, notice, objections, registration --------------------------------------


async def review(
    session: AsyncSession, ctx: Ctx, asset_id: str, decision: str, reason: str, override_conflict: bool
) -> Asset:
    ctx.caller.require(Role.operator)
    asset = await load(session, asset_id, ctx.caller)
    if asset.status != S.submitted:
        raise InvalidTransition(f"asset {asset_id}", asset.status, f"review ({decision})")
    if decision == "reject":
        action = "reject_change" if asset.change else "reject"
        await _transition(session, asset, action, ctx.caller.id, "asset.rejected",
                          {"stage": "review", "change": asset.change, "reason_sha256": audit.text_digest(reason)},
                          updated_at=ctx.now, status_reason=reason, change=False, **_discard_change(asset))
        return asset
    others = await conflicts(session, asset)
    if others and not override_conflict:
        raise Conflict(f"the content is also claimed by {', '.join(others)}; resolve it or override with a reason",
                       kind="unresolved-conflict", extra={"conflicts_with": others})
    data: dict[str, Any] = {"notice_seconds": int(ctx.notice.total_seconds()), "change": asset.change}
    if others:
        data.update(override_conflict=True, conflicts_with=others, reason_sha256=audit.text_digest(reason))
    await _transition(session, asset, "approve", ctx.caller.id, "asset.approved", data, status_reason=reason or None,
                      notice_started_at=ctx.now, notice_ends_at=ctx.now + ctx.notice, updated_at=ctx.now)
    if ctx.notice <= timedelta(0):
        await _register(session, asset, ctx.now, ctx.market)
    return asset


def _discard_change(asset: Asset) -> dict[str, Any]:
    """On a rejected change, the registered revision stays the current one."""
    if not asset.change:
        return {}
    return {"content_revision": asset.registered_revision, "content_sha256": asset.registered_sha256}


async def _registration_number(session: AsyncSession, year: int) -> str:
    """Next number of ``year``, gap-free: the counter moves in the registering transaction."""
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(RegistrationCounter).values(year=year, last=0).on_conflict_do_nothing())
    result = await session.execute(
        update(RegistrationCounter).where(RegistrationCounter.year == year)  # type: ignore[arg-type]
        .values(last=RegistrationCounter.last + 1).returning(RegistrationCounter.last)
    )
    return f"DR-{year}-{result.scalar_one():06d}"


async def certificate_document(session: AsyncSession, asset: Asset, market: str, *, issued_at: datetime) -> dict[str, Any]:
    holder = await session.get(Account, asset.provider_id)
    assert holder is not None
    key = await session.get(AccountKey, asset.claim_key_id) if asset.claim_key_id else None
    key_public = key.public_key if key else None
    rev = await revision(session, asset, asset.registered_revision)
    assert rev is not None
    return {
        "type": CERTIFICATE_TYPE, "v": 1, "market": market,
        "registration_number": asset.registration_number,
        "asset": {"id": asset.id, "title": asset.title, "category": asset.category, "grade": asset.grade},
        "holder": {"id": holder.id, "name": holder.name, "uscc": holder.uscc},
        "rights": json.loads(asset.rights),
        "commitment": commitment_of(rev),
        "claim": json.loads(asset.claim) if asset.claim else None,
        "claim_signature": {"alg": "Ed25519", "key_id": asset.claim_key_id, "public_key": key_public,
                            "value": asset.claim_signature},
        "submitted_at": rfc3339(asset.submitted_at) if asset.submitted_at else None,
        "notice_started_at": rfc3339(asset.notice_started_at) if asset.notice_started_at else None,
        "registered_at": rfc3339(asset.registered_at) if asset.registered_at else None,
        "issued_at": rfc3339(issued_at),
    }


async def _issue_certificate(session: AsyncSession, asset: Asset, market: str, entry_type: str, actor: str,
                             now: datetime, extra: dict[str, Any]) -> None:
    document = await certificate_document(session, asset, market, issued_at=now)
    body = signing.canonical(document)
    entry = await audit.record(session, entry_type, _subject(asset.id), actor, {
        "registration_number": asset.registration_number, "holder": asset.provider_id,
        "revision": asset.registered_revision, "commitment_sha256": document["commitment"]["sha256"],
        "document_sha256": hashlib.sha256(body).hexdigest(), **extra,
    })
    asset.certificate = body.decode()
    asset.certificate_leaf = canonical_entry(entry)
    session.add(asset)
    await session.flush()


async def _register(session: AsyncSession, asset: Asset, now: datetime, market: str) -> None:
    number = asset.registration_number or await _registration_number(session, now.year)
    await _transition(session, asset, "register", "market", "asset.notice_ended", {"registration_number": number},
                      registration_number=number, registered_at=now, registered_revision=asset.content_revision,
                      registered_sha256=asset.content_sha256, change=False, updated_at=now)
    await _issue_certificate(session, asset, market, "asset.registered", "market", now, {"change": False})


async def close_notice_periods(session: AsyncSession, now: datetime, market: str) -> list[str]:
    """Register every asset whose notice has ended with no open objection. Idempotent."""
    open_objection = select(Objection.id).where(Objection.asset_id == Asset.id, Objection.status == "open").exists()
    due = (await session.exec(
        select(Asset).where(Asset.status == S.public_notice, Asset.notice_ends_at <= now, ~open_objection)  # type: ignore[operator]
        .order_by(Asset.notice_ends_at)  # type: ignore[arg-type]
    )).all()
    done = []
    for asset in due:
        try:
            async with session.begin_nested():
                await _register(session, asset, now, market)
            done.append(asset.id)
        except Conflict:
            continue  # another process registered it first
    return done


async def file_objection(session: AsyncSession, ctx: Ctx, asset_id: str, reason: str, evidence: str) -> Objection:
    ctx.caller.require_verified()
    asset = await load(session, asset_id, ctx.caller)
    if asset.provider_id == ctx.caller.id:
        raise Forbidden("a holder cannot object to its own registration", kind="own-asset")
    if asset.status != S.public_notice:
        raise InvalidTransition(f"asset {asset_id}", asset.status, "objecting")
    objection = Objection(id=new_id("obj"), asset_id=asset_id, objector_id=ctx.caller.id, reason=reason,
                          evidence=evidence, status="open", created_at=ctx.now)
    session.add(objection)
    await session.flush()
    await audit.record(session, "asset.objection_filed", _subject(asset_id), ctx.caller.id,
                       {"objection": objection.id})
    return objection


async def resolve_objection(session: AsyncSession, ctx: Ctx, objection_id: str, decision: str, reason: str) -> Objection:
    ctx.caller.require(Role.operator)
    objection = await session.get(Objection, objection_id)
    if objection is None:
        raise NotFound(f"no objection {objection_id}")
    if objection.status != "open":
        raise InvalidTransition(f"objection {objection_id}", objection.status, "resolving")
    status = "upheld" if decision == "uphold" else "dismissed"
    result = await session.execute(
        update(Objection).where(Objection.id == objection_id, Objection.status == "open")  # type: ignore[arg-type]
        .values(status=status, resolution_reason=reason, resolved_by=ctx.caller.id, resolved_at=ctx.now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"objection {objection_id} changed meanwhile", kind="concurrent-update")
    asset = await session.get(Asset, objection.asset_id)
    assert asset is not None
    await audit.record(session, f"asset.objection_{status}", _subject(asset.id), ctx.caller.id,
                       {"objection": objection_id, "reason_sha256": audit.text_digest(reason)})
    if status == "upheld" and asset.status == S.public_notice:
        action = "reject_change" if asset.change else "reject"
        await _transition(session, asset, action, ctx.caller.id, "asset.rejected",
                          {"stage": "objection", "objection": objection_id, "change": asset.change},
                          status_reason=reason, change=False, updated_at=ctx.now, **_discard_change(asset))
    await session.refresh(objection)
    return objection


async def list_objections(session: AsyncSession, caller: Caller, asset_id: str) -> list[ObjectionRead]:
    asset = await load(session, asset_id, caller)
    query = select(Objection).where(Objection.asset_id == asset.id)
    if not (caller.is_staff or caller.id == asset.provider_id):
        query = query.where(Objection.objector_id == caller.id)
    rows = (await session.exec(query.order_by(Objection.id))).all()  # type: ignore[arg-type]
    return [objection_read(o) for o in rows]


def objection_read(o: Objection) -> ObjectionRead:
    return ObjectionRead(id=o.id, asset_id=o.asset_id, objector_id=o.objector_id, reason=o.reason,
                         evidence=o.evidence, status=o.status, resolution_reason=o.resolution_reason,
                         created_at=o.created_at, resolved_at=o.resolved_at)


# -- cancellation and transfer --------------------------------------------------------


async def cancel(session: AsyncSession, ctx: Ctx, asset_id: str, reason: str) -> Asset:
    asset = await load_owned(session, asset_id, ctx.caller)
    if asset.frozen:
        raise Forbidden(f"asset {asset_id} is frozen", kind="asset-frozen")
    await _transition(session, asset, "cancel", ctx.caller.id, "asset.cancelled",
                      {"reason_sha256": audit.text_digest(reason)}, status_reason=reason, updated_at=ctx.now)
    return asset
