"""How the ledger is doing, for regulators and operators (``GET /v1/oversight/ledger``):
its size, when the last checkpoint was signed, how far integration lags (the age of
the oldest entry still pending), how many entries wait, and for each witness configured
in ``MARKET_LEDGER_WITNESSES`` the last size it cosigned and when — ``stale`` when that
was longer ago than ``MARKET_WITNESS_STALE_AFTER`` (or never)."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger import entry as entries
from ledger import note
from ledger.errors import LedgerError
from ledger.store import CheckpointRow, Cosignature, PendingEntry
from market.accounts.schemas import Role
from market.core.context import Ctx
from market.core.types import rfc3339, utcnow


def _entry_time(leaf: bytes) -> datetime | None:
    try:
        text = entries.parse_entry(bytes(leaf))["time"]
    except (LedgerError, KeyError, ValueError):
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def status(session: AsyncSession, ctx: Ctx, log: Any) -> dict[str, Any]:
    ctx.user.require(Role.regulator, Role.operator)
    now = utcnow()  # the ledger keeps wall-clock time
    head = (await session.execute(select(col(CheckpointRow.size), col(CheckpointRow.created_at))
                                  .order_by(col(CheckpointRow.size).desc()).limit(1))).first()
    pending = (await session.execute(select(func.count()).select_from(PendingEntry))).scalar_one()
    oldest = (await session.execute(select(col(PendingEntry.leaf)).order_by(col(PendingEntry.seq)).limit(1))).scalar()
    oldest_at = _entry_time(oldest) if oldest is not None else None
    lag = max((now - oldest_at).total_seconds(), 0.0) if oldest_at is not None else 0.0
    size = head[0] if head else 0
    stale_after = ctx.settings.witness_stale_delta
    witnesses: list[dict[str, Any]] = []
    for vkey in ctx.settings.witness_vkeys:
        try:
            verifier = note.Verifier.from_vkey(vkey)
        except LedgerError:
            witnesses.append({"vkey": vkey, "name": None, "error": "malformed vkey", "stale": True})
            continue
        last = (await session.execute(
            select(col(Cosignature.size), col(Cosignature.timestamp)).where(col(Cosignature.key_id) == verifier.key_id.hex())
            .order_by(col(Cosignature.size).desc()).limit(1)
        )).first()
        cosigned_at = datetime.fromtimestamp(last[1], tz=UTC) if last and last[1] else None
        witnesses.append({
            "name": verifier.name, "vkey": vkey,
            "last_cosigned_size": last[0] if last else None,
            "last_cosigned_at": rfc3339(cosigned_at) if cosigned_at else None,
            "behind": size - last[0] if last else size,
            "stale": cosigned_at is None or now - cosigned_at > stale_after,
        })
    return {
        "origin": log.origin, "vkey": log.vkey, "size": size,
        "checkpoint_at": rfc3339(head[1]) if head else None,
        "pending": pending,
        "oldest_pending_at": rfc3339(oldest_at) if oldest_at else None,
        "integration_lag_seconds": round(lag, 3),
        "witness_stale_after": ctx.settings.witness_stale_after,
        "witnesses": witnesses,
    }
