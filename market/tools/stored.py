"""The operator's commands over stored content (``market storage check`` and ``market
storage migrate``): every revision whose blob the market keeps, checked against the
commitment registered for it, or copied into another blob store and checked there.

The market keeps the blob of every revision that was ever registered (a subscription
may ask for any of them) and of each asset's newest upload; the blob of an upload
replaced before it was registered is deleted on purpose. Which revisions were
registered is read from the ledger (``asset.registered`` entries), as delivery does.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from ledger import entry as entries
from market.core.services import Services
from market.registry.models import Asset, AssetRevision
from market.storage import BlobCorrupted, BlobNotFound, BlobStore

__all__ = ["Kept", "check_blob", "copy_blob", "kept_revisions"]

_LEDGER_PAGE = 1000


@dataclass(frozen=True)
class Kept:
    """A revision whose blob the market keeps, with what it needs to read it."""

    asset_id: str
    revision: int
    blob_id: str
    sha256: str
    size: int
    merkle_root: str
    chunk_size: int
    data_key: bytes

    def name(self) -> str:
        return f"{self.asset_id} revision {self.revision} (blob {self.blob_id})"


async def _registered(services: Services, session: Any, asset_id: str) -> set[int]:
    """The revisions of an asset the ledger shows registered."""
    found: set[int] = set()
    after = (-1, 0)
    while True:
        rows = await services.ledger.by_subject(session, f"asset:{asset_id}", _LEDGER_PAGE, after)
        for _index, _position, leaf in rows:
            entry = entries.parse_entry(leaf)
            if entry["type"] == "asset.registered" and isinstance(entry["data"].get("revision"), int):
                found.add(entry["data"]["revision"])
        if len(rows) < _LEDGER_PAGE:
            return found
        after = (max((p for i, p, _ in rows if i is not None), default=after[0]),
                 max((p for i, p, _ in rows if i is None), default=after[1]))


async def kept_revisions(services: Services) -> AsyncIterator[Kept]:
    """Every revision whose blob must be in the store, asset by asset."""
    master_key = services.content_key()
    async with services.read_sessionmaker() as session:
        assets = (await session.exec(select(Asset).order_by(Asset.id))).all()
        for asset in assets:
            revisions = (await session.exec(select(AssetRevision).where(AssetRevision.asset_id == asset.id)
                                            .order_by(AssetRevision.revision))).all()  # type: ignore[arg-type]
            if not revisions:
                continue
            wanted = await _registered(services, session, asset.id) | {asset.content_revision,
                                                                         asset.registered_revision}
            data_key = master_key.unwrap(asset.id, asset.wrapped_key)
            for rev in revisions:
                if rev.revision in wanted:
                    yield Kept(asset.id, rev.revision, rev.blob_id, rev.sha256, rev.size, rev.merkle_root,
                               rev.chunk_size, data_key)


async def check_blob(blobs: BlobStore, kept: Kept) -> str | None:
    """What is wrong with the revision's blob in ``blobs`` (read whole, decrypted, its
    commitment recomputed), or None. A store that does not answer raises
    BlobStoreUnavailable: that says nothing of the blob."""
    try:
        stored = await blobs.verify(kept.blob_id, kept.data_key)
    except BlobNotFound:
        return "missing"
    except BlobCorrupted as exc:
        return f"corrupted: {exc}"
    if (stored.sha256, stored.size, stored.merkle_root) != (kept.sha256, kept.size, kept.merkle_root):
        return "does not match its registered commitment"
    return None


async def copy_blob(source: BlobStore, target: BlobStore, kept: Kept) -> str | None:
    """Copy the revision's blob into ``target`` unless a good copy is there already,
    then check the copy against the commitment. None when the target holds it right;
    else what is wrong (with the source, or with the copy, which is then removed)."""
    if await target.exists(kept.blob_id) and await check_blob(target, kept) is None:
        return None
    target.chunk_size = kept.chunk_size  # the commitment's Merkle tree is over chunks of this size
    try:
        await target.write(kept.blob_id, kept.data_key, source.open_range(kept.blob_id, kept.data_key), kept.size)
    except BlobNotFound:
        return "missing from the source store"
    except BlobCorrupted as exc:
        return f"corrupted in the source store: {exc}"
    problem = await check_blob(target, kept)
    if problem is not None:
        await target.delete(kept.blob_id)
        return f"the copy {problem}"
    return None

