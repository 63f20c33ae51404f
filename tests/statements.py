"""Counting the SQL statements a request costs, for the tests that hold hot paths to a
budget (docs/performance.md): ``with counted(services) as seen:`` lists every statement any
engine of the app runs inside the block (SQLite's BEGIN and COMMIT go to the driver
directly and are not among them)."""

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event


@contextlib.contextmanager
def counted(services: Any) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split())[:60])

    # PostgreSQL's reader is the writer with options: the writer's listeners hear it too.
    writer, reader = services.engine.sync_engine, services.read_engine.sync_engine
    engines = [writer] if reader.pool is writer.pool else [writer, reader]
    if services.point_read_engine is not None:  # SQLite's in-loop readers
        engines.append(services.point_read_engine.sync_engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
