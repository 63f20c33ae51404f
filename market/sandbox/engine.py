"""DuckDB behind the sandbox: a table loaded from content, locked down, and queries run with limits.

A :class:`Loaded` table is one in-memory DuckDB database holding the table ``data`` (column
names lower-cased, typed as the description says), built from the decrypted content held
in memory — never written to disk — and then locked: no file or network access, no
extensions, no Python objects, no settings changed afterwards (``lock_configuration``).
Queries run each on a cursor of their own, in a worker thread, interrupted past the time
limit. The rules (:mod:`market.sandbox.rules`) decide what may run; the lock holds even if
they were wrong.
"""

import contextlib
import io
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from market.sandbox.rules import Checked

MAX_ROWS = 10_000

SQL_TYPES = {"text": "VARCHAR", "integer": "BIGINT", "decimal": "DOUBLE", "date": "DATE", "boolean": "BOOLEAN"}
TYPE_WORDS = {"text": "text", "integer": "a whole number", "decimal": "a number", "date": "a date (YYYY-MM-DD)",
              "boolean": "true or false"}


class TableMismatch(Exception):
    """The content does not fit its description; the message names the first mismatch."""


class QueryFailed(Exception):
    """A checked query that still could not run: the time or memory limit, or a value error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    role: str


BATCH_MIN = 4  # look-ups asked of DuckDB in one query from this many (Loaded.lookup_many)


@dataclass(frozen=True)
class Wanted:
    """One look-up: rows whose ``column`` equals ``value``, ``limit`` at most, ``shown`` columns."""

    column: Column
    value: str
    shown: tuple[str, ...]
    limit: int


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[list[Any]]
    entities: list[int]  # per row: the group's distinct entities
    row_counts: list[int]  # per row: the group's rows (noisy averages need them)
    suppressed_groups: int


def json_value(value: Any) -> Any:
    """A cell as JSON takes it: dates and decimals as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw_table(content: bytes, fmt: str) -> pa.Table:
    try:
        if fmt == "parquet":
            return pa_parquet.read_table(io.BytesIO(content))
        return pa_csv.read_csv(io.BytesIO(content), convert_options=pa_csv.ConvertOptions(
            column_types=None, strings_can_be_null=False, auto_dict_encode=False),
            read_options=pa_csv.ReadOptions(autogenerate_column_names=False))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableMismatch(f"the content is not readable as {fmt}: {str(exc).splitlines()[0]}") from None


def _as_strings(content: bytes) -> pa.Table:
    """CSV read with every column as text, so that each cell's type is checked by the description."""
    try:
        names = pa_csv.open_csv(io.BytesIO(content)).schema.names
        return pa_csv.read_csv(io.BytesIO(content), convert_options=pa_csv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=True, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableMismatch(f"the content is not readable as csv: {str(exc).splitlines()[0]}") from None


def load(content: bytes, fmt: str, columns: Sequence[Column], *, memory: str = "512MB", threads: int = 1,
         clamp: Mapping[str, tuple[float, float]] | None = None) -> "Loaded":
    """The content as the locked table ``data``; :class:`TableMismatch` naming the first cell that does not fit.

    ``clamp`` maps measures (lower-case names) to the [lowest, highest] their values are held to (noisy
    sums need every row's contribution bounded)."""
    source = _as_strings(content) if fmt == "csv" else _raw_table(content, fmt)
    names = [n for n in source.schema.names]
    wanted = [c.name for c in columns]
    if [n.lower() for n in names] != [n.lower() for n in wanted]:
        for position, (got, want) in enumerate(zip(names, wanted, strict=False), start=1):
            if got.lower() != want.lower():
                raise TableMismatch(f"column {position} of the content is {got!r}, the description says {want!r}")
        raise TableMismatch(f"the content has {len(names)} columns, the description {len(wanted)}")
    db = duckdb.connect(":memory:", config={"threads": str(threads)})
    try:
        db.execute("SET python_enable_replacements = false")
        db.register("source", source)
        for column, original in zip(columns, names, strict=True):
            _check_cells(db, column, original)
        casts = ", ".join(f"{_typed(c, orig, (clamp or {}).get(c.name.lower()))} AS {_quote(c.name.lower())}"
                          for c, orig in zip(columns, names, strict=True))
        db.execute(f"CREATE TABLE data AS SELECT {casts} FROM source")
        db.unregister("source")
        for number, column in enumerate(c for c in columns if c.role == "key"):  # look-ups by key: an ART index
            db.execute(f"CREATE INDEX key_{number} ON data ({_quote(column.name.lower())})")
        rows = db.execute("SELECT count(*) FROM data").fetchone()
        for setting in ("SET enable_external_access = false", "SET autoinstall_known_extensions = false",
                        "SET autoload_known_extensions = false", f"SET memory_limit = '{memory}'",
                        "SET lock_configuration = true"):
            db.execute(setting)
    except BaseException:
        db.close()
        raise
    return Loaded(db, int(rows[0]) if rows else 0)


def _typed(column: Column, original: str, bounds: tuple[float, float] | None) -> str:
    typed = f"CAST({_quote(original)} AS {SQL_TYPES[column.type]})"
    if bounds is None:
        return typed
    low, high = (float(b) for b in bounds)
    return f"CAST(LEAST(GREATEST({typed}, {low!r}), {high!r}) AS {SQL_TYPES[column.type]})"


def _check_cells(db: duckdb.DuckDBPyConnection, column: Column, original: str) -> None:
    sql_type = SQL_TYPES[column.type]
    name = _quote(original)
    bad = f"TRY_CAST(v AS {sql_type}) IS NULL"
    if column.type == "integer":  # a cast would round 1.5 to 2
        bad += " OR NOT regexp_full_match(trim(v::VARCHAR), '[+-]?[0-9]+')"
    found = db.execute(f"SELECT n, v FROM (SELECT row_number() OVER () AS n, {name} AS v FROM source) "
                       f"WHERE v IS NOT NULL AND ({bad}) LIMIT 1").fetchone()
    if found is not None:
        raise TableMismatch(f"column {column.name!r}, row {found[0]}: {str(found[1])[:40]!r} is not "
                            f"{TYPE_WORDS[column.type]}")


class _Watchdog:
    """One thread for the whole process that interrupts the queries running past their
    deadline, and again until they stop (an interrupt that comes before the statement starts
    would be lost). A thread per query cost more than a metered look-up itself."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._watched: dict[int, tuple[float, duckdb.DuckDBPyConnection]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def watch(self, cursor: duckdb.DuckDBPyConnection, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._lock:
            soonest = min((d for d, _ in self._watched.values()), default=None)
            self._next += 1
            self._watched[self._next] = (deadline, cursor)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sandbox-watchdog", daemon=True)
                self._thread.start()
            elif soonest is None or deadline < soonest:  # it sleeps until the soonest it knew
                self._lock.notify()
            return self._next

    def done(self, ticket: int) -> None:
        with self._lock:
            self._watched.pop(ticket, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                if not self._watched:
                    self._lock.wait()
                    continue
                now = time.monotonic()
                overdue = [cursor for deadline, cursor in self._watched.values() if deadline <= now]
                for cursor in overdue:
                    with contextlib.suppress(duckdb.Error):  # (a cursor closed meanwhile)
                        cursor.interrupt()
                soonest = min(deadline for deadline, _ in self._watched.values())
                self._lock.wait(0.01 if overdue else max(0.001, min(soonest - now, 1.0)))


_WATCHDOG = _Watchdog()


class Loaded:
    """One loaded, locked table; :meth:`run` answers checked queries, each on its own cursor."""

    def __init__(self, db: duckdb.DuckDBPyConnection, row_count: int) -> None:
        self._db = db
        self.row_count = row_count
        # Look-ups: a cursor kept by each thread that runs them (making one cost a seventh of
        # a look-up), all closed with the table.
        self._cursors = threading.local()
        self._kept: list[duckdb.DuckDBPyConnection] = []
        self._keeping = threading.Lock()

    def close(self) -> None:
        with self._keeping:
            for cursor in self._kept:
                cursor.close()
            self._kept.clear()
        self._db.close()

    def run(self, checked: Checked, min_group: int, timeout: float) -> Result:
        """Rows of the groups with at least ``min_group`` entities, ordered and limited; the rest counted."""
        cursor = self._db.cursor()
        ticket = _WATCHDOG.watch(cursor, timeout)
        try:
            n = len(checked.names)
            order = ", ".join(f'"c{i}" {"DESC" if desc else "ASC"} NULLS LAST' for i, desc in checked.order)
            order_by = f"ORDER BY {order}, " if order else "ORDER BY "
            order_by += ", ".join(f'"c{i}"' for i in range(n))
            cap = MAX_ROWS + 1 if checked.limit is None else min(checked.limit, MAX_ROWS + 1)
            kept = cursor.execute(
                f"WITH q AS ({checked.sql}) SELECT * FROM q WHERE \"__entities\" >= ? {order_by} LIMIT ?",
                [min_group, cap]).fetchall()
            small = cursor.execute(f"WITH q AS ({checked.sql}) SELECT count(*) FROM q WHERE \"__entities\" < ?",
                                   [min_group]).fetchone()
        except duckdb.InterruptException:
            raise QueryFailed("timeout", f"the query ran longer than {timeout:g} s") from None
        except duckdb.OutOfMemoryException:
            raise QueryFailed("memory", "the query needed more memory than the sandbox allows") from None
        except duckdb.Error as exc:
            raise QueryFailed("error", f"the query failed: {str(exc).splitlines()[0][:200]}") from None
        finally:
            _WATCHDOG.done(ticket)
            cursor.close()
        if len(kept) > MAX_ROWS:
            raise QueryFailed("too-many-rows", f"the result has more than {MAX_ROWS} rows: group more coarsely")
        return Result(columns=list(checked.names), rows=[list(row[:n]) for row in kept],
                      entities=[int(row[n]) for row in kept], row_counts=[int(row[n + 1]) for row in kept],
                      suppressed_groups=int(small[0]) if small else 0)

    def lookup(self, column: Column, value: str, shown: Sequence[str], limit: int, timeout: float) -> list[list[Any]]:
        """Rows whose ``column`` equals ``value`` (cast to the column's type), only the ``shown`` columns,
        in the table's order (the key's index keeps it; an ``ORDER BY rowid`` would scan the table)."""
        outputs = ", ".join(_quote(name.lower()) for name in shown)
        return [list(row) for row in self._watched(
            f"SELECT {outputs} FROM data WHERE {_quote(column.name.lower())} = CAST(? AS {SQL_TYPES[column.type]}) "
            f"LIMIT ?", [value, limit], timeout, value, column)]

    def lookup_many(self, wanted: Sequence[Wanted], timeout: float) -> list[list[list[Any]] | QueryFailed]:
        """Each look-up's rows, as :meth:`lookup` answers it alone, or why it failed. Those by the
        same key column and showing the same columns go in one query when there are at least
        ``BATCH_MIN`` (a query costs DuckDB about 0.5 ms whatever it finds; a batch of 32 costs
        it a seventh of that a look-up); if that query fails, each is asked alone, so that the
        failure is the one look-up's that caused it."""
        answers: list[list[list[Any]] | QueryFailed] = [[] for _ in wanted]
        groups: dict[tuple[Column, tuple[str, ...]], list[int]] = {}
        for i, one in enumerate(wanted):
            groups.setdefault((one.column, one.shown), []).append(i)
        for (column, shown), indexes in groups.items():
            if len(indexes) >= BATCH_MIN:
                try:
                    for i, rows in zip(indexes, self._joined(column, shown, [wanted[i] for i in indexes], timeout),
                                       strict=True):
                        answers[i] = rows
                    continue
                except QueryFailed:
                    pass
            for i in indexes:
                one = wanted[i]
                try:
                    answers[i] = self.lookup(one.column, one.value, one.shown, one.limit, timeout)
                except QueryFailed as exc:
                    answers[i] = exc
        return answers

    def _joined(self, column: Column, shown: tuple[str, ...], group: list[Wanted],
                timeout: float) -> list[list[list[Any]]]:
        values = ", ".join(f"(?, CAST(? AS {SQL_TYPES[column.type]}), ?)" for _ in group)
        outputs = ", ".join(f"data.{_quote(name.lower())}" for name in shown)
        found = self._watched(
            f'WITH wanted("__at", "__key", "__limit") AS (VALUES {values}) '
            f'SELECT wanted."__at", {outputs} FROM wanted JOIN data ON data.{_quote(column.name.lower())} = '
            f'wanted."__key" QUALIFY row_number() OVER (PARTITION BY wanted."__at" ORDER BY data.rowid) '
            f'<= wanted."__limit" ORDER BY wanted."__at", data.rowid',
            [x for i, one in enumerate(group) for x in (i, one.value, one.limit)], timeout, None, column)
        answers: list[list[list[Any]]] = [[] for _ in group]
        for row in found:
            answers[row[0]].append(list(row[1:]))
        return answers

    def _watched(self, sql: str, parameters: list[Any], timeout: float, value: str | None,
                 column: Column) -> list[tuple[Any, ...]]:
        """``sql`` on this thread's kept cursor, stopped past ``timeout``; DuckDB's errors as QueryFailed."""
        cursor = getattr(self._cursors, "cursor", None)
        if cursor is None:
            with self._keeping:
                cursor = self._cursors.cursor = self._db.cursor()
                self._kept.append(cursor)
        ticket = _WATCHDOG.watch(cursor, timeout)
        try:
            return cursor.execute(sql, parameters).fetchall()
        except duckdb.InterruptException:
            raise QueryFailed("timeout", f"the look-up ran longer than {timeout:g} s") from None
        except duckdb.ConversionException:
            what = f"{value[:40]!r}" if value is not None else "a value"
            raise QueryFailed("value", f"{what} is not {TYPE_WORDS[column.type]}") from None
        except duckdb.Error as exc:
            raise QueryFailed("error", f"the look-up failed: {str(exc).splitlines()[0][:200]}") from None
        finally:
            _WATCHDOG.done(ticket)

