"""Answers remembered per process, forgotten at once when the rows behind them change.

A ``Memo`` holds values computed from one *topic* of tables (``watches``). Contract: a
value served from a memo is what a database read would give at that moment. Any
committed change to the topic's tables is seen by the very next request in every
process:

- Detection: session events note which topics a transaction changes (flushed ORM
  objects, and ``insert``/``update``/``delete`` statements run on a session, ORM or
  Core). ``watches`` says which writes matter: a new token cannot be in anyone's
  memory, and ``api_tokens.last_used_at`` is not part of what is remembered.
- This process: when such a transaction commits, every memo of those topics is
  emptied before ``commit()`` returns, hence before the response is sent.
- Other processes on PostgreSQL: the transaction runs ``NOTIFY market_changes`` (the
  topics as payload) before it commits; PostgreSQL delivers it when the change becomes
  visible, and every process LISTENs (``market.core.listener``) and empties those memos on
  receipt. While a process's listening connection is down its memos are off (every
  request reads the database), and they are emptied when it is back. Delivery is
  asynchronous, so for ``CHECKED_TOPICS`` (credentials) the transaction also bumps the
  topic's row of ``change_epochs``, and a request reads that counter (on the listening
  connection, one read shared by concurrent requests: ``PgListener.change_epochs``)
  before using the memo (``Memo.validate``): a change committed before the request
  began is always seen.
- Other processes on SQLite (one machine, one file): the commit writes a new random
  8-byte epoch for each changed topic into ``<database>-changes`` (memory-mapped by
  every process); each lookup compares its topic's epoch with the one it last saw.

A fill racing with a change cannot store the old state: ``put`` keeps a value only if
nothing was invalidated since the ``ticket`` taken before the read.

Changes made with raw SQL text, or on a bare connection rather than a session, are not
seen: change these tables through sessions (as the services do).
"""

import mmap
import os
import weakref
from collections.abc import Awaitable, Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Column, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session
from sqlmodel import Field, SQLModel

CHANNEL = "market_changes"

# Topics whose every change also bumps a counter in the database (PostgreSQL), which
# each request using the memo reads first (``Memo.validate``): a revocation must act
# on the very next request in every process, and a NOTIFY can arrive after it.
CHECKED_TOPICS = frozenset({"credentials"})


class ChangeEpoch(SQLModel, table=True):
    """How many committed transactions have changed ``topic`` (PostgreSQL; bumped in
    the changing transaction itself, so visible exactly when the change is)."""

    __tablename__ = "change_epochs"

    topic: str = Field(primary_key=True, max_length=20)
    epoch: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


@dataclass(frozen=True)
class Watch:
    """Which writes to one table change what a topic remembers."""

    topic: str
    inserts: bool  # whether a new row does
    ignored_columns: frozenset[str] = frozenset()  # an update of only these columns does not


# What the public asset list shows is read from the registry's tables; rather than
# list them (and miss the next one), every table counts but those below, which no
# asset shown depends on and which change all the time.
NOT_ASSET_TABLES = frozenset({"api_tokens", "token_counts", "account_keys", "idempotency_records", "ledger_pending", "ledger_leaves",
                         "ledger_tiles", "ledger_checkpoints", "ledger_cosignatures", "alembic_version",
                         # Trading and oversight: nothing a public asset or listing shows depends on them,
                         # and they change with every trade.
                         "orders", "trade_documents", "deliveries", "disputes", "payouts", "refusals",
                         "stripe_events", "trade_stats", "trade_parties", "alerts", "alerted_orders",
                         "oversight_actions", "evaluator_marks", "change_epochs", "trade_days",
                         "trade_stats_monthly", "trade_parties_monthly", "payment_returns", "delivery_batches",
                         # Regulators' acts and enrollments, dashboard sign-ins: what an act changes
                         # (a freeze, a suspension) is written to the tables above the line.
                         "regulator_acts", "regulator_enrollments", "dashboard_sessions",
                         # What the market tells people (market.core.outbox, market.notifications).
                         "outbox", "notifications", "webhook_endpoints", "webhook_messages",
                         # Usage-controlled delivery: queries and metered use of orders.
                         "sandbox_queries", "usage_periods", "usage_calls",
                         # The Dataspace Protocol's processes and callbacks (market.dsp).
                         "dsp_negotiations", "dsp_transfers", "dsp_callbacks",
                         "webhook_attempts"})
# The tables the public asset and listing lists are read from. Every table is in exactly
# one of the two sets (a test holds it), so a new table is a decision, not a slow leak:
# a table in neither would empty the public memory on every write to it.
ASSET_TABLES = frozenset({"accounts", "assets", "asset_revisions", "asset_transfers", "objections",
                          "registration_counters", "listings", "listing_terms", "listing_docs", "asset_tables"})
_CREDENTIALS = {
    "accounts": Watch("credentials", inserts=False),
    "api_tokens": Watch("credentials", inserts=False, ignored_columns=frozenset({"last_used_at"})),
}
_ASSETS = Watch("assets", inserts=True)


def watches(table: str) -> list[Watch]:
    """The topics a write to ``table`` may change, with their rules."""
    found = [_CREDENTIALS[table]] if table in _CREDENTIALS else []
    if table not in NOT_ASSET_TABLES:
        found.append(_ASSETS)
    return found


_TOPIC_SLOTS = ["assets", "credentials"]  # slot i of the epoch file
_CHANGED = "market.memo_changed"
_EPOCH_SIZE = 8
_MEMOS: "weakref.WeakSet[Memo[Any]]" = weakref.WeakSet()

V = TypeVar("V")
S = TypeVar("S", bound=Sized)  # what ``remembered`` keeps: sized, to bound the memory it holds


class FileEpochs:
    """One 8-byte value per topic, shared by every process on this machine through a mapped file."""

    def __init__(self, path: Path) -> None:
        size = _EPOCH_SIZE * len(_TOPIC_SLOTS)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.pwrite(fd, os.urandom(size), 0)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def read(self, topic: str) -> bytes:
        at = _TOPIC_SLOTS.index(topic) * _EPOCH_SIZE
        return self._map[at:at + _EPOCH_SIZE]

    def bump(self, topic: str) -> None:
        # Random, not incremented: two processes bumping at once still leave a value
        # that differs from what every reader saw before, with no lock.
        at = _TOPIC_SLOTS.index(topic) * _EPOCH_SIZE
        self._map[at:at + _EPOCH_SIZE] = os.urandom(_EPOCH_SIZE)


_EPOCHS: dict[str, FileEpochs] = {}


def sqlite_epochs(database_url: str) -> FileEpochs | None:
    """The shared epochs of a SQLite database file (None for in-memory databases)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database).resolve()
    if str(path) not in _EPOCHS:
        _EPOCHS[str(path)] = FileEpochs(path.with_name(path.name + "-changes"))
    return _EPOCHS[str(path)]


class Memo(Generic[V]):
    """Key → value for one topic in one process, bounded to ``capacity`` entries.

    ``enabled`` is False while changes from other processes cannot be heard (then
    ``get`` always misses and ``put`` stores nothing).
    """

    def __init__(self, topic: str, *, epochs: FileEpochs | None = None, capacity: int = 100_000) -> None:
        if topic not in _TOPIC_SLOTS:
            raise ValueError(f"unknown topic {topic!r}, want one of {_TOPIC_SLOTS}")
        self.topic = topic
        self._entries: dict[Any, V] = {}
        self._generation = 0
        self._epochs = epochs
        self._seen = epochs.read(topic) if epochs else b""
        self.capacity = capacity
        self.enabled = True
        self._db_epoch: int | None = None
        _MEMOS.add(self)

    def _sync(self) -> None:
        if self._epochs is not None:
            now = self._epochs.read(self.topic)
            if now != self._seen:
                self._seen = now
                self.invalidate()

    def get(self, key: Any) -> V | None:
        if not self.enabled:
            return None
        self._sync()
        return self._entries.get(key)

    def ticket(self) -> int:
        """Take before reading the database; give to ``put`` after."""
        self._sync()
        return self._generation

    def put(self, key: Any, value: V, ticket: int) -> None:
        """Remember ``value`` unless anything was invalidated since ``ticket``."""
        self._sync()
        if not self.enabled or ticket != self._generation:
            return
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # rare and cheap to refill; no LRU bookkeeping per hit
        self._entries[key] = value

    def invalidate(self) -> None:
        self._entries.clear()
        self._generation += 1

    @property
    def generation(self) -> int:
        """Changes whenever the memo is emptied."""
        return self._generation

    def validate(self, epoch: int) -> None:
        """Empty the memo unless ``epoch`` — the topic's ``change_epochs`` counter, read
        by the current request — is the one it last saw. Whatever was filled before a
        change committed is then gone before this request looks (a fill racing it is
        refused by its ticket)."""
        if epoch != self._db_epoch:
            self.invalidate()
            self._db_epoch = epoch


async def remembered(memo: "Memo[S]", key: Any, build: Callable[[], Awaitable[S]],
                     max_bytes: int = 256 * 1024) -> S:
    """``build()``'s answer for ``key``, from ``memo`` while nothing of its topic changed.
    Answers over ``max_bytes`` are not kept (bounding the memory a memo holds)."""
    found = memo.get(key)
    if found is not None:
        return found
    ticket = memo.ticket()
    value = await build()
    if len(value) <= max_bytes:
        memo.put(key, value, ticket)
    return value


def invalidate_local(topics: set[str] | None = None) -> None:
    """Empty every memo of this process (of ``topics`` only, when given)."""
    for memo in list(_MEMOS):
        if topics is None or memo.topic in topics:
            memo.invalidate()


_BOOT = os.urandom(6).hex()


def process_tag() -> str:
    """Names this process in a notification's payload (the pid changes in a forked child)."""
    return f"{os.getpid()}.{_BOOT}"


# -- detecting changes ------------------------------------------------------------------


def _note(session: Session, topic: str) -> None:
    session.info.setdefault(_CHANGED, set()).add(topic)


def _matters(obj: Any, watch: Watch) -> bool:
    if not watch.ignored_columns:
        return True
    return any(a.history.has_changes() for a in sa_inspect(obj).attrs if a.key not in watch.ignored_columns)


@event.listens_for(Session, "before_flush")
def _note_flushed_changes(session: Session, _context: Any, _instances: Any) -> None:
    for objects, kind in ((session.new, "insert"), (session.dirty, "update"), (session.deleted, "delete")):
        for obj in objects:
            for watch in watches(getattr(obj, "__tablename__", "")):
                if kind == "insert" and not watch.inserts:
                    continue
                if kind != "update" or _matters(obj, watch):
                    _note(session, watch.topic)


@event.listens_for(Session, "do_orm_execute")
def _note_statement_changes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        note_statement(state.session, state.statement)


def note_statement(session: Session, statement: Any) -> None:
    """Note the topics a Core ``INSERT``/``UPDATE``/``DELETE`` changes, for the memos to
    be told at commit (what an ORM execution notes by itself; ``db.run`` calls this)."""
    if not getattr(statement, "is_dml", False):
        return
    table = getattr(statement, "table", None)
    for watch in watches(getattr(table, "name", "")):
        if statement.is_insert and not watch.inserts:
            continue
        if statement.is_update and watch.ignored_columns:
            values = getattr(statement, "_values", None) or {}
            names = {getattr(k, "key", k) for k in values}
            if names and names <= watch.ignored_columns:
                continue
        _note(session, watch.topic)


@event.listens_for(Session, "before_commit")
def _notify_before_commit(session: Session) -> None:
    if session.new or session.dirty or session.deleted:
        session.flush()  # the final flush happens after this hook; run it now to know
    topics = session.info.get(_CHANGED)
    if topics and session.get_bind().dialect.name == "postgresql":
        connection = session.connection()
        checked = sorted(topics & CHECKED_TOPICS)
        if checked:
            # Visible exactly when the change is; read by every request (Memo.validate).
            names = ", ".join(f"'{topic}'" for topic in checked)
            connection.exec_driver_sql(f"UPDATE change_epochs SET epoch = epoch + 1 WHERE topic IN ({names})")
        # Delivered by PostgreSQL when this transaction commits, not before.
        connection.exec_driver_sql(f"SELECT pg_notify('{CHANNEL}', '{','.join(sorted(topics))}|{process_tag()}')")


@event.listens_for(Session, "after_commit")
def _invalidate_after_commit(session: Session) -> None:
    topics = session.info.pop(_CHANGED, None)
    if not topics:
        return
    invalidate_local(topics)
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        epochs = sqlite_epochs(str(bind.engine.url))
        if epochs is not None:
            for topic in topics:
                epochs.bump(topic)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    # Only the outermost transaction's rollback undoes everything noted. A savepoint
    # rolled back (``begin_nested``) leaves the changes made around it to be committed:
    # keep what was noted (forgetting more than changed costs a refill, never a stale answer).
    if previous_transaction.parent is None:
        session.info.pop(_CHANGED, None)


__all__ = ["ASSET_TABLES", "CHANNEL", "CHECKED_TOPICS", "NOT_ASSET_TABLES", "ChangeEpoch", "FileEpochs", "Memo",
           "invalidate_local", "note_statement", "process_tag", "remembered", "sqlite_epochs"]
