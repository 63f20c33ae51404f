"""SQLite connections for the event loop: aiosqlite's, with fewer hand-offs.

``OneHopConnection`` runs each statement whole in one call to the connection's thread
(the readers); ``InLoopConnection`` runs it at once in the event loop's thread (the
writer, and the point reader of ``db.PointReads``). ``db.make_engine`` builds them.
"""

import asyncio
import sqlite3
import time
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.util import await_only as await_


class _RunNow:
    """aiosqlite's request queue, answered at once in the caller's thread."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller, as aiosqlite's thread does
            if future is None:
                raise
            future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


class _OneHopCursor:
    """What SQLAlchemy's aiosqlite adapter asks of a cursor, each statement in one call to
    the connection's thread: the sqlite3 cursor is made, executed, read to the end and
    closed there, and the rows kept here (the adapter reads every row of a statement at
    once anyway). aiosqlite's own cursor takes four calls for the same (open, execute,
    fetch, close), each a hand-off to its thread and back to the event loop."""

    arraysize = 1

    def __init__(self, connection: "OneHopConnection") -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> "_OneHopCursor":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    async def execute(self, sql: str, parameters: Any = None) -> "_OneHopCursor":
        return await self._run(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Any) -> "_OneHopCursor":
        return await self._run(sql, parameters, many=True)

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> "_OneHopCursor":
        connection = self._connection

        def run() -> tuple[list[Any], Any, int, int | None]:
            cursor = connection._conn.cursor()
            try:
                if many:
                    cursor.executemany(sql, parameters)
                else:
                    cursor.execute(sql, () if parameters is None else parameters)
                rows = cursor.fetchall() if cursor.description else []
                return rows, cursor.description, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self._rows, self.description, self.rowcount, self.lastrowid = await connection._execute(run)
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection whose cursors run a statement in one call to its thread
    (``_OneHopCursor``): a read session's statement is one hand-off to the thread and
    back, not four. For the readers of SQLite (``make_engine``)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int = 64) -> None:
        super().__init__(connector, iter_chunk_size)
        # As SQLAlchemy does for the connections it makes itself: a pooled connection never
        # closed (a command's engine left undisposed) must not keep the interpreter from exiting.
        self._thread.daemon = True

    def cursor(self) -> _OneHopCursor:  # type: ignore[override]
        return _OneHopCursor(self)


class InLoopConnection(OneHopConnection):
    """aiosqlite's connection without its thread: each call runs at once on the event
    loop's thread, and an ``await`` of it completes without yielding to other tasks.

    For the server's one writer connection (``make_engines``). A write transaction holds
    SQLite's one write lock from ``BEGIN IMMEDIATE`` to ``COMMIT``; through a thread, each
    of its statements was an ``await`` that put the transaction back in the event loop's
    queue behind every other request's work, so the lock was held for all of that too.
    In the loop's thread the transaction runs from begin to commit on its own CPU time.
    It never waits in SQLite's busy handler, which would stop the loop: ``BEGIN
    IMMEDIATE`` is retried after asynchronous sleeps (``_take_write_lock``), and once the
    write lock is held nothing in WAL mode waits for another lock."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, 64)
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, "InLoopConnection"]:
        return self._connect().__await__()  # type: ignore[return-value]


# How long a writer waits for another process's write lock (SQLite's busy timeout).
BUSY_TIMEOUT = 30.0
MAX_PAUSE = 0.002  # seconds between two tries of an in-loop writer for the write lock


def take_write_lock(driver: Any, sql: str) -> None:
    """``BEGIN IMMEDIATE`` on an in-loop connection: SQLITE_BUSY is retried after an
    asynchronous sleep (1, then 2 ms: another process, the worker among them, holds the
    lock for short transactions, and a longer sleep left this process's one writer idle
    after they ended) until ``BUSY_TIMEOUT``, so the loop runs on."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.001
    while True:
        try:
            await_(driver.execute(sql))
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        await_(asyncio.sleep(pause))
        pause = min(2 * pause, MAX_PAUSE)


class Direct:
    """What ``db.run`` needs of a Core statement to run it straight on an in-loop
    connection's ``sqlite3`` cursor: its SQL, parameters in order with their bind
    processors (as SQLAlchemy's execution context applies them), and whether it
    returns rows. ``of`` gives None for a statement SQLAlchemy must run itself: a
    textual one (its result columns are unknown), one with Python-side column defaults,
    expanding or literal parameters, or result columns that need converting (datetimes,
    booleans, JSON on SQLite)."""

    __slots__ = ("compiled", "sql", "positions", "processors", "returns_rows", "_order", "_fixed")

    def __init__(self, compiled: Any) -> None:
        self.compiled, self.sql, self.positions = compiled, compiled.string, tuple(compiled.positiontup)
        self.processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
        self.returns_rows = bool(compiled._result_columns)
        # Each position's name and bind processor, and the values the statement binds
        # itself (a literal compared with, a defaulted bindparam): what construct_params
        # works out on every run, once.
        self._order = tuple((name, self.processors.get(name)) for name in self.positions)
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self._fixed = {name: bind.value for name, bind in binds.items()
                       if not bind.required and bind.callable is None and name in self.positions}

    @classmethod
    def of(cls, statement: Any, keys: list[str], dialect: Any) -> "Direct | None":
        compiled: Any = statement.compile(dialect=dialect, column_keys=keys)
        if (compiled.isplaintext or compiled.insert_prefetch or compiled.update_prefetch or compiled.literal_execute_params
                or compiled.post_compile_params or compiled.escaped_bind_names or not compiled.positional):
            return None
        for entry in compiled._result_columns:
            if entry[3]._cached_result_processor(dialect, None) is not None:
                return None
        return cls(compiled)

    def parameters(self, given: dict[str, Any]) -> tuple[Any, ...]:
        """``given`` in the statement's order, with the statement's own bound values and
        each type's bind processor applied."""
        fixed, out = self._fixed, []
        try:
            for name, process in self._order:
                value = given[name] if name in given else fixed[name]
                out.append(value if process is None else process(value))
        except KeyError:  # a required value missing: SQLAlchemy says which, as it would
            values, processors = self.compiled.construct_params(given, escape_names=False), self.processors
            return tuple(processors[k](values[k]) if k in processors else values[k] for k in self.positions)
        return tuple(out)

    def run(self, connection: sqlite3.Connection, parameters: dict[str, Any] | list[dict[str, Any]],
            events: Any = None) -> "DirectResult":
        """Run on ``connection`` (in this thread), in its open transaction. ``events``: the
        SQLAlchemy connection whose cursor listeners hear of it, as they would have."""
        many = isinstance(parameters, list)
        args: Any = ([self.parameters(p) for p in parameters] if isinstance(parameters, list)
                     else self.parameters(parameters))
        cursor = connection.cursor()
        try:
            if events is not None:
                events.dispatch.before_cursor_execute(events, cursor, self.sql, args, None, many)
            if many:
                cursor.executemany(self.sql, args)
            else:
                cursor.execute(self.sql, args)
            rows = cursor.fetchall() if self.returns_rows else []
            if events is not None:
                events.dispatch.after_cursor_execute(events, cursor, self.sql, args, None, many)
            return DirectResult(rows, cursor.rowcount)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(self.sql, args, exc, sqlite3.Error) from exc
        finally:
            cursor.close()


class DirectResult:
    """The part of a ``CursorResult`` that callers of ``db.run`` use, for a statement run
    directly: its rows (plain tuples) and the rows it changed."""

    __slots__ = ("rowcount", "_rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def all(self) -> list[tuple[Any, ...]]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise MultipleResultsFound("more than one row where one or none was expected")
        return self.scalar()

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise (MultipleResultsFound if self._rows else NoResultFound)("exactly one row was expected")
        return self._rows[0][0]
