"""PostgreSQL's statements straight on asyncpg, for ``db.run``.

SQLAlchemy runs a statement on asyncpg through its execution context and a greenlet:
the cached compiled statement is looked up, its parameters built, a cursor made, and
the coroutine of asyncpg's call driven from a synchronous frame. For the prebuilt Core
statements of the hot paths ``db.run`` compiles each once (``Direct``, as for SQLite)
and awaits asyncpg here, on the same connection and in the same transaction, with what
SQLAlchemy's asyncpg adapter does around the call kept: its lock, the transaction begun
on the first statement, its cache of prepared statements, and its errors, which reach
the caller as SQLAlchemy's (``IntegrityError`` and the rest; a lost connection is
invalidated as SQLAlchemy would). Cursor listeners hear each statement.

Only a single set of parameters takes this path (``executemany`` is SQLAlchemy's), and
only statements ``Direct.of`` accepts (no Python-side defaults, expanding parameters or
result columns that need converting).
"""

import functools
import re
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.util import greenlet_spawn

from market.core.sqlite_connections import Direct, DirectResult

_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


# What this module uses of SQLAlchemy's that is not its public API: checked once, and if
# a release of SQLAlchemy lacks any of it, every statement takes SQLAlchemy's own path.
_USED = {"AsyncAdapt_asyncpg_connection": ("_execute_mutex", "_transaction", "_start_transaction", "_prepare",
                                           "_handle_exception"),
         "PGDialect_asyncpg": ("_invalidate_schema_cache_asof",)}


@functools.cache
def _adapter_class() -> type | None:
    """The asyncpg adapter's class, when it (and its dialect, and SQLAlchemy's connection)
    still has what ``run`` uses; else None."""
    from sqlalchemy.dialects.postgresql import asyncpg

    found = all(hasattr(getattr(asyncpg, cls, None), name) for cls, names in _USED.items() for name in names)
    if not found or not hasattr(Connection, "_handle_dbapi_exception"):
        return None
    adapter: type = asyncpg.AsyncAdapt_asyncpg_connection
    return adapter


def adapter_of(driver: Any) -> Any:
    """SQLAlchemy's adapter of an asyncpg connection (the pool's DBAPI connection) when
    ``driver`` is one and this SQLAlchemy has what ``run`` uses of it, else None."""
    adapter = _adapter_class()
    return driver if adapter is not None and isinstance(driver, adapter) else None


async def run(direct: Direct, adapter: Any, connection: Connection, parameters: dict[str, Any],
              heard: Connection | None) -> DirectResult:
    """Run ``direct`` with ``parameters`` on ``adapter``'s asyncpg connection, in the
    transaction ``connection`` (its SQLAlchemy connection) has open."""
    args = direct.parameters(parameters)
    try:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()
            if heard is not None:
                heard.dispatch.before_cursor_execute(heard, None, direct.sql, args, None, False)
            asof = connection.dialect._invalidate_schema_cache_asof  # type: ignore[attr-defined]
            prepared, _ = await adapter._prepare(direct.sql, asof)
            rows = await prepared.fetch(*args)
            status = prepared.get_statusmsg()
    except Exception as error:  # noqa: BLE001 - raised again as SQLAlchemy's, below
        await _raise(adapter, connection, error, direct.sql, args)
    if heard is not None:
        heard.dispatch.after_cursor_execute(heard, None, direct.sql, args, None, False)
    counted = _COUNT.match(status or "")
    return DirectResult([tuple(row) for row in rows] if direct.returns_rows else [],
                        int(counted.group(1)) if counted else -1)


async def _raise(adapter: Any, connection: Connection, error: Exception, sql: str, args: tuple[Any, ...]) -> None:
    """``error`` as SQLAlchemy raises it: asyncpg's translated by the adapter into its DBAPI
    error, then wrapped (and a lost connection invalidated) by the connection."""
    try:
        adapter._handle_exception(error)  # raises the DBAPI error (it is one already, if _start_transaction's)
    except Exception as translated:  # noqa: BLE001
        await greenlet_spawn(connection._handle_dbapi_exception, translated, sql, args, None, None)
    raise AssertionError("unreachable: the adapter always raises")  # pragma: no cover
