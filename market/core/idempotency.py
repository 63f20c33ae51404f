"""``Idempotency-Key`` for every creating ``POST``: one mechanism, used by all routes.

A replay with the same key and the same (validated) body within 24 hours returns the
first response, status and body; the same key with another body is 409. Keys are
scoped to the caller's account, or for anonymous calls to the key alone.

The stored response sits in the same transaction as the business change it records,
so the two commit together or not at all. A concurrent duplicate loses on the primary
key, is rolled back, and replays the winner's response.

Stored bodies can hold secrets (a sign-up's token), so they are kept encrypted under a
key derived from the Idempotency-Key itself, which only the client knows; the row is
found by a hash of the key.
"""

import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar import Request, Response
from pydantic import BaseModel
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.db import rowcount
from market.core.errors import Conflict, Unprocessable
from market.core.types import UTCDateTime, utcnow

WINDOW = timedelta(hours=24)
HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"

    scope: str = Field(primary_key=True, max_length=64)
    key_hash: str = Field(primary_key=True, max_length=64)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: bytes  # nonce || AES-GCM(response JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


Action = Callable[[], Awaitable[tuple[int, Any]]]


def _key_material(key: str) -> tuple[str, bytes]:
    digest = hashlib.sha256(b"market idempotency v1\n" + key.encode()).digest()
    lookup = hashlib.sha256(b"lookup\n" + digest).hexdigest()
    return lookup, hashlib.sha256(b"seal\n" + digest).digest()


def _seal(secret: bytes, payload: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(secret).encrypt(nonce, payload, None)


def _open(secret: bytes, sealed: bytes) -> bytes:
    return AESGCM(secret).decrypt(sealed[:12], sealed[12:], None)


def request_fingerprint(request: Request, data: BaseModel | dict[str, Any] | None) -> str:
    body = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    text = json.dumps([request.method, request.url.path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _to_json(body: Any) -> Any:
    return body.model_dump(mode="json") if isinstance(body, BaseModel) else body


async def run(
    request: Request,
    session: AsyncSession,
    scope: str | None,
    data: BaseModel | dict[str, Any] | None,
    action: Action,
) -> Response[Any]:
    """Run ``action`` once per key, commit, and answer; replay the stored answer after.

    ``action`` does its writes on ``session`` without committing and returns
    ``(status, body)``. ``scope`` is the caller's account id, or None when anonymous.
    """
    key = request.headers.get(HEADER)
    if key is None:
        status, body = await action()
        await session.commit()
        return Response(_to_json(body), status_code=status)
    if not (0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
        raise Unprocessable(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters (a random UUID)",
            kind="bad-idempotency-key",
        )
    lookup, secret = _key_material(key)
    scope = scope or "anonymous"
    fingerprint = request_fingerprint(request, data)

    replay = await _replay(session, scope, lookup, secret, fingerprint)
    if replay is not None:
        return replay
    status, body = await action()
    payload = json.dumps(_to_json(body), separators=(",", ":")).encode()
    session.add(
        IdempotencyRecord(
            scope=scope, key_hash=lookup, request_hash=fingerprint, status_code=status, body=_seal(secret, payload)
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        replay = await _replay(session, scope, lookup, secret, fingerprint)
        if replay is None:
            raise
        return replay
    return Response(_to_json(body), status_code=status)


async def _replay(
    session: AsyncSession, scope: str, lookup: str, secret: bytes, fingerprint: str
) -> Response[Any] | None:
    record = await session.get(IdempotencyRecord, (scope, lookup))
    if record is None:
        return None
    if utcnow() - record.created_at > WINDOW:
        await session.delete(record)
        await session.flush()
        return None
    if record.request_hash != fingerprint:
        raise Conflict(f"this {HEADER} was already used with another request", kind="idempotency-key-reused")
    body = json.loads(_open(secret, record.body))
    return Response(body, status_code=record.status_code, headers={"Idempotent-Replayed": "true"})


async def purge_expired(session: AsyncSession) -> int:
    result = await session.execute(delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < utcnow() - WINDOW))
    await session.commit()
    return rowcount(result)


__all__ = ["HEADER", "IdempotencyRecord", "purge_expired", "request_fingerprint", "run"]
