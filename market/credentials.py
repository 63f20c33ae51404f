"""Who a bearer token belongs to, remembered per process and forgotten at once on change.

Contract: a request authenticated from memory sees the token and its account exactly
as a database read would, except for ``last_used_at`` (kept at one-minute granularity
by ``auth``). Revoking a token, and any change to an account (KYC decision,
suspension, roles), is seen by the very next request in every process:

- Detection: session events mark a transaction that changes a row of ``accounts``, or
  a column of ``api_tokens`` other than ``last_used_at`` (flushed ORM objects, and ORM
  ``update()``/``delete()`` statements run on a session). Inserts need nothing: a new
  token cannot be in anyone's memory.
- This process: when such a transaction commits, every cache of the process is
  emptied before ``commit()`` returns, hence before the response is sent.
- Other processes on PostgreSQL: the transaction runs ``NOTIFY market_credentials``
  before it commits; PostgreSQL delivers it when the change becomes visible, and every
  process LISTENs (``PgListener``) and empties its cache on receipt. While a process's
  listening connection is down its cache is off (every request reads the database),
  and it is emptied when the connection is back.
- Other processes on SQLite (one machine, one file): the commit writes a new random
  8-byte epoch into ``<database>-credentials`` (memory-mapped by every process); each
  lookup compares it with the epoch its cache was filled under.

A cache fill racing with a change cannot store the old state: a fill keeps what it
read only if no invalidation happened since it started (``ticket``).

Changes made with raw SQL text, or on a bare connection rather than a session, are
not seen: change accounts and tokens through the ORM (as the services do).
"""

import asyncio
import contextlib
import mmap
import os
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session

from market.accounts.models import Account, ApiToken
from market.logs import log

CHANNEL = "market_credentials"
_CHANGED = "market.credentials_changed"
_EPOCH_SIZE = 8
_CACHES: "weakref.WeakSet[CredentialCache]" = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """An account's columns as read when its token was last checked; immutable, and no
    ORM object, so no request can change what other requests see or attach it to a
    session. Load the row (``session.get(Account, id)``) to change an account."""

    id: str
    name: str
    kind: str
    roles: str
    uscc: str | None
    jurisdiction: str
    status: str
    suspended: bool
    status_reason: str | None
    verified_at: datetime | None
    verified_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> "AccountSnapshot":
        return cls(**{name: getattr(account, name) for name in cls.__slots__})  # type: ignore[attr-defined]

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split(","))


@dataclass
class Credential:
    """A valid token and a snapshot of its account."""

    token_id: str
    account: AccountSnapshot
    last_used_at: datetime | None  # as last written by this process, for the touch granularity


class FileEpoch:
    """An 8-byte value shared by every process on this machine through a mapped file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _EPOCH_SIZE:
                os.write(fd, os.urandom(_EPOCH_SIZE))
            self._map = mmap.mmap(fd, _EPOCH_SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[:_EPOCH_SIZE]

    def bump(self) -> None:
        # Random, not incremented: two processes bumping at once still leave a value
        # that differs from what every reader saw before, with no lock.
        self._map[:_EPOCH_SIZE] = os.urandom(_EPOCH_SIZE)


_EPOCHS: dict[str, FileEpoch] = {}


def sqlite_epoch(database_url: str) -> FileEpoch | None:
    """The shared epoch of a SQLite database file (None for in-memory databases)."""
    url = make_url(database_url)
    if not url.get_backend_name() == "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database).resolve()  # type: ignore[arg-type]
    key = str(path)
    if key not in _EPOCHS:
        _EPOCHS[key] = FileEpoch(path.with_name(path.name + "-credentials"))
    return _EPOCHS[key]


class CredentialCache:
    """Token hash → ``Credential`` for one process, bounded to ``capacity`` entries.

    ``enabled`` is False while cross-process invalidation cannot be trusted (then
    ``get`` always misses and ``put`` stores nothing).
    """

    def __init__(self, *, epoch: FileEpoch | None = None, enabled: bool = True, capacity: int = 100_000) -> None:
        self._entries: dict[str, Credential] = {}
        self._generation = 0
        self._epoch = epoch
        self._seen = epoch.read() if epoch else b""
        self.capacity = capacity
        self.enabled = enabled
        _CACHES.add(self)

    def _sync(self) -> None:
        if self._epoch is not None:
            now = self._epoch.read()
            if now != self._seen:
                self._seen = now
                self.invalidate()

    def get(self, token_hash: str) -> Credential | None:
        if not self.enabled:
            return None
        self._sync()
        return self._entries.get(token_hash)

    def ticket(self) -> int:
        """Take before reading the database; give to ``put`` after."""
        self._sync()
        return self._generation

    def put(self, token_hash: str, credential: Credential, ticket: int) -> None:
        """Remember ``credential`` unless anything was invalidated since ``ticket``."""
        self._sync()
        if not self.enabled or ticket != self._generation:
            return
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # rare and cheap to refill; no LRU bookkeeping per hit
        self._entries[token_hash] = credential

    def invalidate(self) -> None:
        self._entries.clear()
        self._generation += 1


def invalidate_local() -> None:
    """Empty every cache of this process."""
    for cache in list(_CACHES):
        cache.invalidate()


class PgListener:
    """LISTENs on ``CHANNEL`` and empties ``cache`` on every notification; keeps the
    cache off while the connection is down, and reconnects."""

    def __init__(self, dsn: str, cache: CredentialCache, *, retry: float = 1.0) -> None:
        self.dsn, self.cache, self.retry = dsn, cache, retry
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        cache.enabled = False

    async def start(self) -> None:
        """Connect once (so the cache is on when the app starts), then keep connected."""
        with contextlib.suppress(Exception):
            await self._connect()
        self._task = asyncio.create_task(self._keep())

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self._lost.clear()
        # Anything may have changed while nobody listened.
        self.cache.invalidate()
        self.cache.enabled = True

    def _notified(self, *_args: Any) -> None:
        self.cache.invalidate()

    def _terminated(self, *_args: Any) -> None:
        self.cache.enabled = False
        self.cache.invalidate()
        self._lost.set()

    async def _keep(self) -> None:
        while True:
            if self._conn is not None and not self._conn.is_closed():
                await self._lost.wait()
            self.cache.enabled = False
            try:
                await self._connect()
            except Exception as exc:  # noqa: BLE001 - retried; the cache stays off meanwhile
                log.warning("credential listener down; authenticating from the database", error=type(exc).__name__)
                await asyncio.sleep(self.retry)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


# -- detecting changes ------------------------------------------------------------------


def _token_change_matters(token: ApiToken) -> bool:
    state = sa_inspect(token)
    return any(attr.history.has_changes() for attr in state.attrs if attr.key != "last_used_at")


@event.listens_for(Session, "before_flush")
def _note_flushed_changes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, Account) or (isinstance(obj, ApiToken) and (obj in session.deleted or _token_change_matters(obj))):
            session.info[_CHANGED] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _note_statement_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ in (Account, ApiToken):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "before_commit")
def _notify_before_commit(session: Session) -> None:
    if not session.info.get(_CHANGED) and not session.dirty and not session.deleted:
        return
    session.flush()  # the final flush happens after this hook; run it now to know
    if session.info.get(_CHANGED) and session.get_bind().dialect.name == "postgresql":
        # Delivered by PostgreSQL when this transaction commits, not before.
        session.connection().exec_driver_sql(f"NOTIFY {CHANNEL}")


@event.listens_for(Session, "after_commit")
def _invalidate_after_commit(session: Session) -> None:
    if not session.info.pop(_CHANGED, False):
        return
    invalidate_local()
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        epoch = sqlite_epoch(str(bind.url))
        if epoch is not None:
            epoch.bump()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


__all__ = ["CHANNEL", "AccountSnapshot", "Credential", "CredentialCache", "FileEpoch", "PgListener", "asyncpg_dsn",
           "invalidate_local", "sqlite_epoch"]
