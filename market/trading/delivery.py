"""Delivery (docs/API.md "Orders": content and proofs): the buyer of an active order receives
the data, decrypted and streamed, and can prove any chunk of it against the Merkle root
in the registration certificate and the contract.

Who receives what
  Only the order's buyer: strangers get 404 (``access.load``), the holder and staff who
  may see the order 403 ``not-buyer``. A suspended buyer gets 403 ``account-suspended``
  (the auth layer refuses a suspended account's writes, not its reads). The order must
  be ``active`` and not past ``expires_at``, neither the asset nor the listing may be
  frozen, and the registration must not be revoked; otherwise 409 ``no-access`` (access
  ends at expiry, refund, freeze, revocation).
  A one-time or free order delivers the revision registered at settlement
  (``order.asset_revision``). A subscription may ask ``?revision=N`` for that revision
  or any revision the ledger shows registered (``asset.registered`` entries) at or
  after settlement and before ``expires_at``, and gets the newest of them by default.
  A revision whose change was rejected was never registered and is never delivered;
  any other revision number is 404.

Ranges (RFC 9110 §14)
  One range per request: ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` give 206 with
  ``Content-Range``; a first byte at or beyond the size (or ``bytes=-0``) gives 416 with
  ``Content-Range: bytes */size``. A header the server may ignore is ignored and the
  whole representation sent with 200: several ranges (a multipart answer is not
  offered; clients ask one range at a time), another unit, a malformed or backwards
  range, or an ``If-Range`` that does not match the ``ETag``. The strong ``ETag`` is
  the revision's SHA-256, so a client resuming with ``If-Range`` never splices two
  revisions. ``Repr-Digest`` (RFC 9530) is that of the whole revision, on 200 and 206.
  Only the 64 KiB chunks a range overlaps are read and decrypted.

The ledger: what was actually sent
  No transaction is open while the body streams. Each delivery is recorded after the
  stream ends, in one transaction of its own: its receipt (order, revision, ``range``
  [first, last], ``bytes``, ``sha256``, ``sent_at``) in a ``deliveries`` row, in the
  order's open batch of receipts; a batch goes on the ledger as one confidential
  ``delivery.sent`` entry holding the Merkle root of its receipts
  (``market.trading.receipts``), so the log grows with time, not with requests.
  Bytes count as sent once the server's ``send`` of them returned
  (they were handed to the connection); if the client goes away midway, what was sent
  up to then is recorded (range, count and hash of exactly those bytes), and nothing
  at all when no byte was sent (a disconnect before the body, a HEAD).

Access ending during a download
  Access is checked when the request starts and again, from the database, before the
  next piece whenever ``RECHECK_SECONDS`` have passed since the last check. A download
  under way when access ends (refund, expiry, freeze, revocation, suspension) stops within that
  time: the body ends short of its ``Content-Length`` (the client sees a truncated
  response) and the ledger records the part sent.

Proofs are in ``market.trading.proofs``.
"""

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import entry as entries
from market.accounts.models import Account
from market.core.context import Ctx
from market.core.errors import Conflict, DomainError, Forbidden, NotFound
from market.core.logs import log
from market.core.services import Services
from market.listings.models import Listing
from market.registry.models import Asset, AssetRevision
from market.registry.states import AssetStatus
from market.storage import BlobCorrupted, BlobNotFound, BlobStore, BlobStoreUnavailable, HashedPiece, MasterKey
from market.trading import access, receipts
from market.trading.models import Order
from market.trading.ranges import ByteRange, etag_of, parse_range
from market.trading.states import OrderStatus
from market.web.auth import Caller

__all__ = ["RECHECK_SECONDS", "ByteRange", "Frozen", "OrderAccess", "Sending", "check_access", "choose_revision",
           "open_delivery", "parse_range", "refusal"]

RECHECK_SECONDS = 5.0  # how often a running download re-checks access

_LEDGER_PAGE = 1000


# -- access -------------------------------------------------------------------------


class OrderAccess(Protocol):
    """What the rules of access read of an order (its row, or the columns of one)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def expires_at(self) -> datetime | None: ...


class Frozen(Protocol):
    """What they read of its asset and listing."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def frozen(self) -> bool: ...


def _refuse(order: OrderAccess, asset: Frozen, listing: Frozen | None, suspended: bool, now: datetime) -> None:
    """The rules of access, on rows read now (at the start, and again while streaming)."""
    if suspended:
        raise Forbidden("the account is suspended; its purchased content is not delivered meanwhile",
                        kind="account-suspended")
    if order.status != OrderStatus.active:
        why = ("its access has ended" if order.status in (OrderStatus.expired, OrderStatus.refunded)
               else "content is delivered once it is settled")
        raise Conflict(f"order {order.id} is {order.status}; {why}", kind="no-access",
                       extra={"current_status": order.status})
    if order.expires_at is None or order.expires_at <= now:
        raise Conflict(f"the access of order {order.id} ended at {order.expires_at}", kind="no-access")
    if asset.frozen:
        raise Conflict(f"asset {asset.id} is frozen by the regulator; its content is not delivered meanwhile",
                       kind="no-access")
    if asset.status == AssetStatus.revoked:
        raise Conflict(f"the registration of asset {asset.id} was revoked by the regulator; its content is not "
                       "delivered", kind="no-access")
    if listing is not None and listing.frozen:
        raise Conflict(f"listing {listing.id} is frozen by the regulator; its content is not delivered meanwhile",
                       kind="no-access")


def refusal(order: OrderAccess, asset: Frozen, listing: Frozen | None, suspended: bool,
            now: datetime) -> DomainError | None:
    """Why the content of ``order`` is not delivered now, or None (the same rules)."""
    try:
        _refuse(order, asset, listing, suspended, now)
    except DomainError as exc:
        return exc
    return None


def delivery_of(order: Order) -> str:
    """How the order's plan delivers: ``download`` (the default), ``sandbox`` or ``api``."""
    return str(json.loads(order.plan).get("delivery") or "download")


def check_download(order: Order) -> None:
    """Sandbox and api plans never hand over the content (docs/usage.md)."""
    if delivery_of(order) != "download":
        raise Conflict(f"order {order.id} delivers by {delivery_of(order)}: its content is used inside the market, "
                       "never downloaded", kind="wrong-delivery", extra={"delivery": delivery_of(order)})


async def check_access(session: AsyncSession, ctx: Ctx, order_id: str) -> tuple[Order, Asset]:
    """The order and its asset, if the caller may receive the content now (else 404/403/409)."""
    caller: Caller = ctx.user
    order = await access.load(session, order_id, caller)
    if order.buyer_id != caller.id:
        raise Forbidden("only the order's buyer receives its content", kind="not-buyer")
    asset = await session.get_one(Asset, order.asset_id)
    listing = await session.get(Listing, order.listing_id)
    _refuse(order, asset, listing, caller.account.suspended, ctx.now)
    return order, asset


async def _recheck(services: Services, order_id: str, buyer_id: str) -> str | None:
    """Why access has ended since the download began, or None: everything read afresh."""
    async with services.read_sessionmaker() as session:
        order = await session.get(Order, order_id)
        if order is None:
            return f"order {order_id} is gone"
        asset = await session.get_one(Asset, order.asset_id)
        listing = await session.get(Listing, order.listing_id)
        account = await session.get_one(Account, buyer_id)
        try:
            _refuse(order, asset, listing, account.suspended, services.clock.now())
        except DomainError as exc:
            return exc.detail
        return None


# -- revisions ----------------------------------------------------------------------


def _is_subscription(order: Order) -> bool:
    return bool(json.loads(order.plan).get("model") == "subscription")


async def _registered_during(session: AsyncSession, ledger: Any, order: Order) -> set[int]:
    """Revisions of the order's asset registered (``asset.registered`` on the ledger) at
    or after settlement and before the access ends."""
    found: set[int] = set()
    after = (-1, 0)
    while True:
        rows = await ledger.by_subject(session, f"asset:{order.asset_id}", _LEDGER_PAGE, after)
        for _index, _position, leaf in rows:
            entry = entries.parse_entry(leaf)
            if entry["type"] != "asset.registered" or not isinstance(entry["data"].get("revision"), int):
                continue
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
            if order.settled_at is not None and order.expires_at is not None \
                    and order.settled_at <= at < order.expires_at:
                found.add(entry["data"]["revision"])
        if len(rows) < _LEDGER_PAGE:
            return found
        last_index = max((p for i, p, _ in rows if i is not None), default=after[0])
        last_seq = max((p for i, p, _ in rows if i is None), default=after[1])
        after = (last_index, last_seq)


async def choose_revision(session: AsyncSession, ledger: Any, order: Order, asset: Asset,
                          wanted: int | None) -> AssetRevision:
    """The revision this request delivers (404 for one the order does not cover)."""
    settled = order.asset_revision
    if settled is None:
        raise Conflict(f"order {order.id} has no settled revision", kind="no-access")
    covered = {settled}
    if _is_subscription(order) and wanted != settled and asset.registered_revision > settled:
        covered |= {r for r in await _registered_during(session, ledger, order)
                    if settled < r <= asset.registered_revision}
    number = max(covered) if wanted is None else wanted
    if number not in covered:
        raise NotFound(f"revision {number} of asset {asset.id} is not delivered under order {order.id}",
                       kind="not-found")
    rev = await session.get(AssetRevision, (asset.id, number))
    if rev is None:
        raise NotFound(f"asset {asset.id} has no revision {number}")
    return rev


# -- streaming ----------------------------------------------------------------------


@dataclass
class Sending:
    """One download under way: an async iterator of the plaintext pieces to send, and a
    tally of what the server confirms sent (``sent``), recorded by ``finish``."""

    services: Services
    order_id: str
    buyer_id: str
    revision: int
    blob_id: str
    data_key: bytes = field(repr=False)
    size: int
    byte_range: ByteRange
    partial: bool
    repr_sha256: str
    etag: str
    bytes_sent: int = 0
    recheck_seconds: float = RECHECK_SECONDS
    stopped: str | None = None  # why the stream ended early (access ended, a read failed)
    # Run once the whole revision was sent to its end and recorded (a transfer completes).
    on_whole: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    # Checked with the order's access, for a stream under something narrower than the order
    # (a Dataspace Protocol transfer's token): why the stream must stop, or None.
    still: Callable[[], Awaitable[str | None]] | None = field(default=None, repr=False)
    _digest: Any = field(default=None, repr=False)  # SHA-256 of the bytes sent, once any were
    _unsent: HashedPiece | None = field(default=None, repr=False)  # the piece handed out, not yet sent
    _pieces: Any = field(default=None, repr=False)
    _first: HashedPiece | None = field(default=None, repr=False)  # read before the response starts
    _checked_at: float = field(default_factory=time.monotonic, repr=False)
    _finished: bool = False

    # The response's headers: Content-Length, Content-Range (206), digests.
    def headers(self) -> dict[str, str]:
        digest = base64.b64encode(bytes.fromhex(self.repr_sha256)).decode()
        headers = {"Content-Length": str(self.byte_range.length), "Accept-Ranges": "bytes",
                   "Repr-Digest": f"sha-256=:{digest}:", "ETag": self.etag, "Cache-Control": "private, no-store",
                   "X-Content-Revision": str(self.revision)}
        if self.partial:
            headers["Content-Range"] = f"bytes {self.byte_range.first}-{self.byte_range.last}/{self.size}"
        return headers

    def __aiter__(self) -> "Sending":
        return self

    async def start(self) -> None:
        """Open the blob and read the first piece, before the response starts: a blob
        that is missing or unreadable (BlobNotFound, BlobStoreUnavailable,
        BlobCorrupted) is then a problem response, never a 200 cut short after its
        headers."""
        blobs: BlobStore = self.services.blobs
        self._pieces = aiter(blobs.open_hashed_range(self.blob_id, self.data_key, self.byte_range.first,
                                                     self.byte_range.last + 1, hashed=not self._whole))
        try:
            self._first = await anext(self._pieces)
        except StopAsyncIteration:  # empty content: nothing to send
            await self.close()
        except BaseException:
            await self.close()
            raise

    async def __anext__(self) -> bytes:
        if self.stopped is not None or self._pieces is _CLOSED:
            raise StopAsyncIteration
        if self._pieces is None:
            await self.start()
        if self._first is not None:
            self._unsent, self._first = self._first, None
            return self._unsent.data
        if self._pieces is _CLOSED:  # empty content
            raise StopAsyncIteration
        if time.monotonic() - self._checked_at >= self.recheck_seconds:
            why = await _recheck(self.services, self.order_id, self.buyer_id)
            if why is None and self.still is not None:
                why = await self.still()
            self._checked_at = time.monotonic()
            if why is not None:
                self.stopped = f"access ended: {why}"
                log.warning("delivery stopped", order=self.order_id, reason=why, bytes_sent=self.bytes_sent)
                await self.close()
                raise StopAsyncIteration
        try:
            piece: HashedPiece = await anext(self._pieces)
            self._unsent = piece
            return piece.data
        except StopAsyncIteration:
            await self.close()
            raise
        except (BlobCorrupted, BlobNotFound, BlobStoreUnavailable) as exc:  # the stream cannot go on; say so,
            # and record what was sent
            self.stopped = f"content unreadable: {exc}"
            log.error("delivery failed", order=self.order_id, blob=self.blob_id, error=str(exc))
            await self.close()
            raise StopAsyncIteration from None

    def sent(self, data: bytes) -> None:
        """``data``, the last piece handed out, was handed to the connection: the digest
        of the bytes sent becomes the one computed with that piece (the pieces are sent
        one at a time, in order, each whole or not at all)."""
        if not data:
            return
        piece, self._unsent = self._unsent, None
        if piece is None or len(piece.data) != len(data):
            raise RuntimeError("a delivery sent bytes other than the piece it was given")
        self._digest = piece.sha256
        self.bytes_sent += len(data)

    @property
    def _whole(self) -> bool:
        """Whether this request sends the whole revision: its SHA-256 is then known."""
        return self.byte_range.first == 0 and self.byte_range.length == self.size

    async def _sent_sha256(self) -> str:
        """The SHA-256 of exactly the bytes sent. A range is hashed while it streams. The
        whole revision is not: every chunk is authenticated (AES-GCM, its index, its
        place as last and the blob's id bound to it) as it is read, so the bytes sent
        are the plaintext sealed at upload, whose SHA-256 is the revision's; only a
        download of it cut short is read again, up to where it stopped, and hashed."""
        if self._digest is not None:
            return str(self._digest.hexdigest())
        if self.bytes_sent == self.size:
            return self.repr_sha256
        first = self.byte_range.first
        return await self.services.blobs.sha256(self.blob_id, self.data_key, first, first + self.bytes_sent)

    async def close(self) -> None:
        """Release the blob file now (not whenever the generator is collected)."""
        pieces, self._pieces = self._pieces, _CLOSED
        if pieces is not None and pieces is not _CLOSED:
            await pieces.aclose()

    async def finish(self) -> dict[str, Any] | None:
        """Record what was sent (once), in one transaction: the receipt, kept in the
        order's open batch of receipts (``market.trading.receipts``), which goes on the
        ledger as one ``delivery.sent`` entry when it fills or its window passes.
        Nothing when no byte was sent. Returns the receipt recorded."""
        if self._finished:
            return None
        self._finished = True
        await self.close()
        if self.bytes_sent == 0:
            return None
        first = self.byte_range.first
        last = first + self.bytes_sent - 1
        ctx = Ctx.system(self.services)
        short = self.stopped is not None or self.bytes_sent != self.byte_range.length
        receipt = receipts.receipt(self.order_id, self.revision, first, last, await self._sent_sha256(), ctx.now,
                                   (self.byte_range.first, self.byte_range.last) if short else None)
        async with self.services.sessionmaker() as session:
            try:
                await receipts.add(session, ctx, receipt)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        if self.on_whole is not None and not short and self._whole:
            await self.on_whole()
        return receipt


_CLOSED: Any = object()


async def open_delivery(session: AsyncSession, ctx: Ctx, order_id: str, wanted: int | None,
                        range_header: str | None, if_range: str | None = None) -> Sending:
    """Check access, choose the revision and the range: what this request will send.
    The caller ends its transaction before streaming (none is held meanwhile)."""
    order, asset = await check_access(session, ctx, order_id)
    check_download(order)
    rev = await choose_revision(session, ctx.services.ledger, order, asset, wanted)
    etag = etag_of(rev)
    byte_range = parse_range(range_header, rev.size, if_range, etag)
    master_key: MasterKey = ctx.services.content_key()
    return Sending(services=ctx.services, order_id=order.id, buyer_id=order.buyer_id, revision=rev.revision,
                   blob_id=rev.blob_id, data_key=master_key.unwrap(asset.id, asset.wrapped_key), size=rev.size,
                   byte_range=byte_range or ByteRange(0, rev.size - 1), partial=byte_range is not None,
                   repr_sha256=rev.sha256, etag=etag)
