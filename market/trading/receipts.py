"""Delivery receipts, coalesced on the ledger (docs/trading.md "Delivery receipts").

Every download ends in a receipt (order, revision, ``range`` [first, last], ``bytes``,
``sha256`` of the bytes handed to the connection, ``sent_at``; ``requested`` when fewer
were sent than asked), kept in ``deliveries``. The log grows with time, not with
requests: an order's receipts gather in an open batch (``delivery_batches``), and the
batch goes on the ledger as ONE confidential ``delivery.sent`` entry (docs/LEDGER.md §2: the
public entry holds only the salted document's ``document_sha256``) when it closes —
once it holds ``MARKET_DELIVERY_RECEIPT_BATCH`` receipts (in the transaction of the
receipt that fills it), or when the clock finds it open longer than
``MARKET_DELIVERY_RECEIPT_WINDOW``. Closing is one transaction: the entry, the kept
document and the batch row.

The batch document: ``order``, ``receipts`` (count), ``bytes`` (sum), ``first_sent_at``,
``last_sent_at`` and ``merkle_root``: the RFC 9162 root (hex) of the tree whose leaf
``i`` is the UTF-8 RFC 8785 canonical JSON of receipt ``i`` (``deliveries.position``).
So a buyer proves any range it received with the receipt, its inclusion proof into the
root, and the batch's bundle (docs/LEDGER.md §6): ``GET /v1/orders/{id}/deliveries``.

Concurrency: both writers of a batch (a receipt, the clock) first lock the order's row
on PostgreSQL (``FOR UPDATE``), so an order has one open batch and a closed batch never
gains a receipt; SQLite runs one writer at a time.
"""

import base64
import json
from typing import Any

from sqlalchemy import select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import merkle
from ledger.entry import canonical as canonical_entry
from ledger.log import Log
from market.core import signing
from market.core.context import Ctx
from market.core.errors import Unprocessable
from market.core.pagination import check_limit, decode_cursor, encode_cursor
from market.core.types import rfc3339
from market.registry.certificates import bundle
from market.trading import documents
from market.trading.models import Delivery, DeliveryBatch, Order

__all__ = ["RECEIPT_TYPE", "add", "close", "close_due", "leaf_of", "listing", "receipt"]

RECEIPT_TYPE = "delivery.receipt"
_CURSOR_PREFIX = "dlv_"


def receipt(order_id: str, revision: int, first: int, last: int, sha256: str, sent_at: Any,
            requested: tuple[int, int] | None = None) -> dict[str, Any]:
    """The receipt of one download: what was handed to the connection."""
    out: dict[str, Any] = {"type": RECEIPT_TYPE, "order": order_id, "revision": revision, "range": [first, last],
                           "bytes": last - first + 1, "sha256": sha256, "sent_at": rfc3339(sent_at)}
    if requested is not None:
        out["requested"] = [requested[0], requested[1]]
    return out


def leaf_of(receipt_: dict[str, Any]) -> bytes:
    """A receipt's leaf bytes in its batch's tree: its RFC 8785 canonical JSON."""
    return signing.canonical(receipt_)


async def _lock_order(session: AsyncSession, order_id: str) -> None:
    if session.get_bind().dialect.name != "sqlite":
        await session.execute(select(col(Order.id)).where(col(Order.id) == order_id).with_for_update())


async def add(session: AsyncSession, ctx: Ctx, receipt_: dict[str, Any]) -> Delivery:
    """Keep ``receipt_`` in the order's open batch (opening one), and close the batch if
    it is now full. Does not commit."""
    order_id = receipt_["order"]
    await _lock_order(session, order_id)
    batch = (await session.execute(
        select(DeliveryBatch).where(col(DeliveryBatch.order_id) == order_id, col(DeliveryBatch.closed_at).is_(None))
        .order_by(col(DeliveryBatch.id)).limit(1).execution_options(populate_existing=True)
    )).scalars().first()
    if batch is None:
        batch = DeliveryBatch(order_id=order_id, opened_at=ctx.now)
        session.add(batch)
        await session.flush()
    first, last = receipt_["range"]
    row = Delivery(order_id=order_id, revision=receipt_["revision"], first_byte=first, last_byte=last,
                   bytes_sent=receipt_["bytes"], sha256=receipt_["sha256"], created_at=ctx.now, batch_id=batch.id,
                   position=batch.receipts, receipt=leaf_of(receipt_).decode())
    session.add(row)
    batch.receipts += 1
    batch.bytes_sent += receipt_["bytes"]
    await session.flush()
    if batch.receipts >= ctx.settings.delivery_receipt_batch:
        await close(session, ctx, batch)
    return row


async def _leaves(session: AsyncSession, batch_id: int) -> list[bytes]:
    rows = (await session.execute(select(col(Delivery.receipt)).where(col(Delivery.batch_id) == batch_id)
                                  .order_by(col(Delivery.position)))).scalars().all()
    return [str(r).encode() for r in rows]


async def close(session: AsyncSession, ctx: Ctx, batch: DeliveryBatch) -> dict[str, Any]:
    """Write the batch's ``delivery.sent`` entry and close it. Requires an open batch
    with at least one receipt, its order locked. Does not commit. Returns the entry."""
    if batch.closed_at is not None:
        raise ValueError(f"delivery batch {batch.id} is already closed")
    assert batch.id is not None  # a stored batch
    leaves = await _leaves(session, batch.id)
    if len(leaves) != batch.receipts or not leaves:
        raise ValueError(f"delivery batch {batch.id} holds {len(leaves)} receipts, want {batch.receipts} (> 0)")
    root = merkle.root([merkle.leaf_hash(leaf) for leaf in leaves])
    first, last = json.loads(leaves[0]), json.loads(leaves[-1])
    document = {"order": batch.order_id, "receipts": batch.receipts, "bytes": batch.bytes_sent,
                "first_sent_at": first["sent_at"], "last_sent_at": last["sent_at"], "merkle_root": root.hex()}
    entry, full = await documents.record(session, ctx, "delivery.sent", f"order:{batch.order_id}", document)
    batch.closed_at = ctx.now
    batch.merkle_root = root.hex()
    batch.document = signing.canonical(full).decode()
    batch.leaf = canonical_entry(entry)
    await session.flush()
    return entry


async def close_due(session: AsyncSession, ctx: Ctx, limit: int = 500) -> int:
    """Close the open batches whose window has passed (the clock task). Does not commit."""
    due = (await session.execute(
        select(col(DeliveryBatch.id), col(DeliveryBatch.order_id))
        .where(col(DeliveryBatch.closed_at).is_(None),
               col(DeliveryBatch.opened_at) <= ctx.now - ctx.settings.delivery_receipt_delta)
        .order_by(col(DeliveryBatch.opened_at)).limit(limit)
    )).all()
    closed = 0
    for batch_id, order_id in due:
        await _lock_order(session, order_id)
        batch = await session.get(DeliveryBatch, batch_id, populate_existing=True)
        if batch is not None and batch.closed_at is None and batch.receipts > 0:
            await close(session, ctx, batch)
            closed += 1
    return closed


# -- the buyer's receipts -------------------------------------------------------------


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


async def listing(session: AsyncSession, log: Log, order: Order, limit: int, cursor: str | None) -> dict[str, Any]:
    """One page of the order's receipts, oldest first: ``{"items", "batches",
    "next_cursor"}``. An item: the ``receipt``, its ``batch`` id and ``position``, and
    (once the batch is closed) the ``inclusion_proof`` of its leaf into the batch's
    ``merkle_root``; ``batches`` holds each batch named on the page: ``status``,
    ``receipts``, ``merkle_root`` and, once closed, the ``bundle`` of its ``delivery.sent``
    entry (docs/LEDGER.md §6: the document holds the root). Receipts recorded before batches
    existed have ``batch`` null (each has a ledger entry of its own)."""
    check_limit(limit)
    query = select(Delivery).where(col(Delivery.order_id) == order.id).order_by(col(Delivery.id))
    if cursor:
        value = decode_cursor(cursor)
        if not value.startswith(_CURSOR_PREFIX) or not value[len(_CURSOR_PREFIX):].isdigit():
            raise Unprocessable("cursor is not one this API gave out", kind="bad-cursor")
        query = query.where(col(Delivery.id) > int(value[len(_CURSOR_PREFIX):]))
    rows = list((await session.execute(query.limit(limit + 1))).scalars().all())
    more, rows = len(rows) > limit, rows[:limit]
    batch_ids = sorted({r.batch_id for r in rows if r.batch_id is not None})
    batches: dict[int, DeliveryBatch] = {}
    if batch_ids:
        found = (await session.execute(select(DeliveryBatch).where(col(DeliveryBatch.id).in_(batch_ids)))).scalars()
        batches = {b.id: b for b in found}
    trees: dict[int, list[bytes]] = {}
    shown: dict[str, Any] = {}
    for batch_id, batch in batches.items():
        view: dict[str, Any] = {"status": "open" if batch.closed_at is None else "closed",
                                "receipts": batch.receipts, "merkle_root": batch.merkle_root, "bundle": None}
        if batch.closed_at is not None and batch.document is not None and batch.leaf is not None:
            trees[batch_id] = [merkle.leaf_hash(leaf) for leaf in await _leaves(session, batch_id)]
            view["bundle"] = await bundle(session, log, f"order:{order.id}", batch.document, bytes(batch.leaf))
        shown[str(batch_id)] = view
    items = []
    for row in rows:
        item: dict[str, Any] = {"receipt": json.loads(row.receipt) if row.receipt else None,
                                "batch": row.batch_id, "position": row.position, "inclusion_proof": None}
        if row.receipt is None:  # before batches: the row's own fields
            item["receipt"] = {"order": row.order_id, "revision": row.revision,
                               "range": [row.first_byte, row.last_byte], "bytes": row.bytes_sent, "sha256": row.sha256, "sent_at": rfc3339(row.created_at)}
        tree = trees.get(row.batch_id) if row.batch_id is not None else None
        if tree is not None and row.position is not None:
            item["inclusion_proof"] = [_b64(h) for h in merkle.inclusion_proof(row.position, len(tree), tree)]
        items.append(item)
    next_cursor = encode_cursor(f"{_CURSOR_PREFIX}{rows[-1].id}") if more and rows else None
    return {"items": items, "batches": shown, "next_cursor": next_cursor}
