"""Database wiring: the async engines and sessions (migrations: ``market.core.migrations``).

SQLite (the embedded default) gets WAL, ``synchronous=NORMAL``, a busy timeout and
foreign keys on every connection. PostgreSQL is used as is.

Two kinds of session: ``make_sessionmaker`` for requests that may write (on SQLite
every transaction begins ``IMMEDIATE``, taking the write lock up front), and
``make_read_sessionmaker`` for reads (``GET``/``HEAD``): a deferred ``BEGIN`` that
takes no lock, so in WAL mode reads neither queue behind one another nor behind a
writer. A read session refuses to write (``ReadOnlySessionError``): on SQLite a write
would upgrade the deferred transaction's lock and could fail at once with
``SQLITE_BUSY`` when another writer committed since its snapshot.
"""

import asyncio
import contextlib
import functools
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, inspect
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import Executable
from sqlalchemy.util import await_only as await_
from sqlmodel.ext.asyncio.session import AsyncSession

# Every process that opens sessions registers the events that tell memos (its own and
# other processes') about changed rows.
from market.core import memo as _memo
from market.core import pg_direct
from market.core.logs import log
from market.core.sqlite_connections import (
    BUSY_TIMEOUT,
    Direct,
    DirectResult,
    InLoopConnection,
    OneHopConnection,
    take_write_lock,
)

SessionMaker = async_sessionmaker[AsyncSession]

# Execution option (and session info key) marking connections and sessions that only read.
READ_ONLY = "market_read_only"
# Execution option of the point reader's SQLite connection (``PointReads``): no BEGIN.
_NO_BEGIN = "market_no_begin"


class ReadOnlySessionError(RuntimeError):
    """A session made for reads was asked to write: a bug in the route, never the client's fault."""


def table_of(model: type[Any]) -> Table:
    """A table model's ``Table`` (SQLModel sets ``__table__`` without declaring it)."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


def rowcount(result: object) -> int:
    """The rows an UPDATE or DELETE matched, from what ``session.execute`` (or ``run``) returned for it."""
    assert isinstance(result, CursorResult | DirectResult)
    return result.rowcount


def is_sqlite(url_or_engine: str | AsyncEngine) -> bool:
    url = url_or_engine if isinstance(url_or_engine, str) else str(url_or_engine.url)
    return url.startswith("sqlite")


# SQLite's own files beside the database; SQLite gives each the database file's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parents 0700; existing ones are left alone."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=0o700)


def private_database_files(path: Path) -> None:
    """Make a SQLite database's files readable by their owner only, before SQLite opens it.

    The directories the market creates are 0700 (a directory the operator made is
    left as it is: its mode is their choice). The database file is created empty with
    mode 0600 (SQLite takes a zero-length file as an empty database) so that SQLite,
    which gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's mode,
    makes them 0600 too. Files of an existing database that group or others may read
    are narrowed to 0600, with a warning: the market owns them, and they hold
    everything, tokens' hashes and parties' data included.
    """
    _make_private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(file, mode & 0o700)
            log.warning("database file was open to group or others; made private",
                        file=str(file), was=f"{mode:04o}", now=f"{mode & 0o700:04o}")


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None, in_loop: bool = False) -> AsyncEngine:
    """An engine of ``url``. SQLite with ``in_loop``: its connections run on the event
    loop's thread (``InLoopConnection``), for a writer engine of one connection."""
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_database_files(Path(path))
        pool = {} if max_overflow is None else {"pool_size": pool_size, "max_overflow": max_overflow}
        connect = functools.partial(sqlite3.connect, path, timeout=0 if in_loop else BUSY_TIMEOUT,
                                    isolation_level=None, check_same_thread=False)

        async def creator() -> OneHopConnection:
            if in_loop:
                return await InLoopConnection(connect)
            connection = OneHopConnection(connect)
            await connection  # its thread starts and connects
            return connection

        # No rollback on return to the pool: sessions and connections end their own
        # transactions, and with aiosqlite each call is a round trip to a thread.
        engine = create_async_engine(url, async_creator=creator, pool_reset_on_return=None, **pool)

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy's documented SQLite recipe: the driver must not BEGIN on its
            # own; the "begin" hook below does it.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={0 if in_loop else int(BUSY_TIMEOUT * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        # BEGIN IMMEDIATE for every transaction that may write: SQLite's deferred BEGIN
        # turns a read-then-write race into an immediate SQLITE_BUSY with no retry;
        # taking the write lock up front makes writers queue on busy_timeout and lets
        # ``UPDATE ... WHERE status = :from`` decide races cleanly. Read sessions (see
        # make_read_sessionmaker) begin deferred: they never write, so never upgrade.
        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:
            if conn.get_execution_options().get(_NO_BEGIN):
                return  # each statement is its own implicit transaction (PointReads)
            sql = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            # Straight to aiosqlite: one round trip to its thread, where the adapter's
            # cursor would take three (open, execute, close), all inside the lock.
            driver = conn.connection.driver_connection
            assert driver is not None  # a live pool connection
            if isinstance(driver, InLoopConnection):
                take_write_lock(driver, sql)
            else:
                await_(driver.execute(sql))

        return engine
    engine = create_async_engine(url, pool_size=pool_size,
                                 max_overflow=pool_size if max_overflow is None else max_overflow)
    ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection back in use within this many seconds is not pinged.
PING_AFTER_IDLE = 1.0


def ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled PostgreSQL connection before use, as ``pool_pre_ping`` does, but
    ping only one that sat idle longer than ``PING_AFTER_IDLE`` seconds.

    SQLAlchemy's ping on asyncpg is three round trips (``BEGIN``, ``;``, ``ROLLBACK``),
    on every checkout: three of a token's seven. Connections in steady use skip it (the
    bypass window of HikariCP, 500 ms there). A connection whose server end closed it (a
    restart, a terminated backend, an idle timeout) is known closed to asyncpg as soon
    as the event loop reads the socket's end, and is replaced without a round trip.
    Raising ``DisconnectionError`` in ``checkout`` makes the pool drop the connection
    and hand out another (SQLAlchemy's documented custom pessimistic check).
    """

    @event.listens_for(engine.sync_engine.pool, "connect")
    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        # Just made, or just back from use: known good now (a new connection, as the
        # pool's overflow makes them under load, is not pinged on its first checkout).
        if record is not None:
            record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = record.driver_connection  # asyncpg's
        if driver is None or driver.is_closed():
            raise DisconnectionError("the server closed this connection")
        if time.monotonic() - record.info.get(_RETURNED, 0.0) > PING_AFTER_IDLE:
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise DisconnectionError("the connection did not answer a ping") from exc


_RETURNED = "market_returned_at"


def make_engines(url: str) -> tuple[AsyncEngine, AsyncEngine]:
    """``(writer, reader)`` engines of one database, for a server process.

    SQLite: the writer has a single connection, so this process's write transactions
    queue in line for it (FIFO, woken at once) rather than in SQLite's busy handler,
    which polls for the write lock in sleeps of up to 100 ms; the reader has a pool of
    its own and begins deferred. Other processes' writers still meet on the busy
    timeout. PostgreSQL: one engine and pool for both.
    """
    if is_sqlite(url):
        return (make_engine(url, pool_size=1, max_overflow=0, in_loop=True),
                make_engine(url).execution_options(**{READ_ONLY: True}))
    engine = make_engine(url)
    return engine, engine.execution_options(**{READ_ONLY: True})


def make_point_read_engine(url: str) -> AsyncEngine | None:
    """SQLite: read connections that run in the event loop's thread (``InLoopConnection``),
    for the read sessions of routes that read a few rows by key (``POINT_READS`` routes:
    a settled order's contract, one order). Each statement of a pooled reader is a hand-off
    to the connection's thread and back (with ``BEGIN`` and ``ROLLBACK``, four of them for
    a contract: a third of its time); in the loop's thread it completes at once. They
    begin deferred and never write, so they take no lock, and a long read would hold the
    loop: routes that scan (search, lists, exports) keep the pooled readers. As the
    writer's, they never wait in SQLite's busy handler: a read that meets ``SQLITE_BUSY``
    (in WAL mode only while another process recovers the log after a crash) fails its
    request rather than stop the loop. None on PostgreSQL, whose reads have no such hand-off."""
    if not is_sqlite(url):
        return None
    return make_engine(url, pool_size=4, max_overflow=12, in_loop=True).execution_options(**{READ_ONLY: True})


class PointReads:
    """Single statements by key, each a consistent snapshot on its own, for the hottest
    read paths (a metered look-up's checks).

    SQLite: one connection kept open in the event loop's thread, as the writer's is, and
    read-only (``PRAGMA query_only``), with no ``BEGIN``: each statement is its own
    implicit read transaction in WAL mode, so it takes no lock and waits for none, and a
    request pays no pool checkout, ``BEGIN`` or ``ROLLBACK`` (160 of the 230 µs such a
    read cost through a pooled connection). A statement on it never yields the loop
    midway, so requests share it one statement at a time. Meant for reads of a few rows
    by key: a long one would hold the loop. PostgreSQL: a pool of its own, of a fixed size
    (requests wait for a connection rather than open and close one each, which is what the
    shared pool's overflow did under load), in autocommit (the statement is the one round
    trip: no ``BEGIN`` or ``ROLLBACK``) and without a ping before each use (a connection
    found broken is dropped and the read tried once more on another).
    """

    def __init__(self, read_engine: AsyncEngine, pool_size: int = 8) -> None:
        url = read_engine.url.render_as_string(hide_password=False)
        self._connection: AsyncConnection | None = None
        self._opening = asyncio.Lock()
        if is_sqlite(read_engine):
            self._pooled = read_engine
            self._engine: AsyncEngine | None = make_engine(url, pool_size=1, max_overflow=0, in_loop=True) \
                .execution_options(**{READ_ONLY: True, _NO_BEGIN: True})
        else:
            self._pooled = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=False,
                                               isolation_level="AUTOCOMMIT")
            self._engine = None

    async def one(self, statement: Executable, parameters: dict[str, Any]) -> Row[Any] | None:
        """The first row ``statement`` gives, or None."""
        if self._engine is None:
            try:
                return await self._pooled_one(statement, parameters)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            return await self._pooled_one(statement, parameters)  # once more, on another connection
        connection = self._connection or await self._open(self._engine)
        try:
            return (await connection.execute(statement, parameters)).first()
        except DBAPIError:
            # Busy (a WAL being recovered) or broken: this once on a pooled reader, and the
            # kept connection opened afresh next time.
            self._connection = None
            await connection.close()
            return await self._pooled_one(statement, parameters)

    async def _pooled_one(self, statement: Executable, parameters: dict[str, Any]) -> Row[Any] | None:
        async with self._pooled.connect() as conn:
            return (await conn.execute(statement, parameters)).first()

    async def _open(self, engine: AsyncEngine) -> AsyncConnection:
        async with self._opening:
            if self._connection is None:
                connection = await engine.connect()
                await connection.exec_driver_sql("PRAGMA query_only = ON")
                self._connection = connection
            return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        if self._engine is not None:
            await self._engine.dispose()
        else:
            await self._pooled.dispose()


def make_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    """Sessions that may write (``BEGIN IMMEDIATE`` on SQLite)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def make_read_sessionmaker(engine: AsyncEngine) -> SessionMaker:
    """Sessions that only read: a deferred ``BEGIN`` on SQLite; any write raises
    ``ReadOnlySessionError`` before reaching the database."""
    return async_sessionmaker(engine.execution_options(**{READ_ONLY: True}), class_=AsyncSession,
                              expire_on_commit=False, info={READ_ONLY: True})


async def run(session: AsyncSession, statement: Executable,
              parameters: Any = None) -> CursorResult[Any] | DirectResult:
    """Run a Core statement (prebuilt, with bound parameters) in ``session``'s transaction,
    on its connection: what ``session.execute`` does for such a statement, without the
    ORM's work around it (its execution state, events and result wrapping: ~80 µs a
    statement, a third of a short write's statement on PostgreSQL).

    Kept from the ORM path: what the session holds unwritten is flushed first (autoflush),
    a read session refuses to write, and the memos learn of the topics it changes at
    commit (``memo.note_statement``). Rows come back as Core rows, never ORM objects.
    """
    sync = session.sync_session
    if sync.new or sync.dirty or sync.deleted:
        await session.flush()
    if getattr(statement, "is_dml", False):
        if sync.info.get(READ_ONLY):
            raise ReadOnlySessionError("a read session (GET/HEAD) tried to write")
        _memo.note_statement(sync, statement)
    connection, sync_connection, driver = await _connection(session)
    if driver is not None and parameters is not None:
        # SQLite's writer: the statement straight on its sqlite3 connection, in this thread
        # (~30 µs against ~120 µs through SQLAlchemy's execution, a tenth of a purchase).
        # PostgreSQL: straight on asyncpg (market.core.pg_direct), one set of parameters.
        direct = _direct(statement, parameters, connection)
        if direct is not None:
            heard = sync_connection if sync_connection._has_events or sync_connection.engine._has_events else None
            if isinstance(driver, InLoopConnection):
                return direct.run(driver._conn, parameters, heard)
            if not isinstance(parameters, list):
                return await pg_direct.run(direct, driver, sync_connection, parameters, heard)
    return await connection.execute(statement, parameters)


_CONNECTION = "market_run_connection"


async def _connection(session: AsyncSession) -> tuple[AsyncConnection, Connection, Any]:
    """The connection of ``session``'s transaction, with the driver ``run`` may use directly:
    SQLite's in-loop writer, SQLAlchemy's adapter of an asyncpg connection, or None. Asked
    of the session once a transaction (``session.connection()`` is a trip through a
    greenlet, ~40 µs, and a purchase runs a dozen statements), then kept in ``session.info``
    beside the transaction it belongs to."""
    sync = session.sync_session
    transaction = sync.get_transaction()
    kept = sync.info.get(_CONNECTION)
    if kept is not None and transaction is not None and kept[0] is transaction and transaction.is_active:
        return kept[1]
    connection = await session.connection()
    sync_connection = connection.sync_connection
    assert sync_connection is not None  # a session's connection is open
    fairy = sync_connection.connection
    driver = fairy.driver_connection
    found = (connection, sync_connection,
             driver if isinstance(driver, InLoopConnection) else pg_direct.adapter_of(fairy.dbapi_connection))
    sync.info[_CONNECTION] = (sync.get_transaction(), found)
    return found


# The statements ``run`` has compiled for a direct run, by the statement (kept alive
# beside it, so its id is its own) and the parameters' names; None for one SQLAlchemy
# runs itself. Module-level statements are a few dozen; a statement built per call would
# only fill this up, and it is emptied when full.
_DIRECT: dict[tuple[int, tuple[str, ...]], tuple[Executable, Direct | None]] = {}
_DIRECT_LIMIT = 512


def _direct(statement: Executable, parameters: Any, connection: AsyncConnection) -> Direct | None:
    many = isinstance(parameters, list)
    if many and not parameters:
        return None
    names = tuple(parameters[0] if many else parameters)
    key = (id(statement), names)
    found = _DIRECT.get(key)
    if found is None or found[0] is not statement:
        if len(_DIRECT) >= _DIRECT_LIMIT:
            _DIRECT.clear()
        found = _DIRECT[key] = (statement, Direct.of(statement, list(names), connection.dialect))
    direct = found[1]
    return None if direct is None or (many and direct.returns_rows) else direct


@event.listens_for(Session, "do_orm_execute")
def _refuse_statement_writes(state: ORMExecuteState) -> None:
    if state.session.info.get(READ_ONLY) and (state.is_insert or state.is_update or state.is_delete):
        raise ReadOnlySessionError("a read session (GET/HEAD) tried to write")


@event.listens_for(Session, "before_flush")
def _refuse_flushes(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlySessionError("a read session (GET/HEAD) tried to write")
