"""Counting the SQL statements a request costs, for the tests that hold hot paths to a
budget (docs/performance.md): ``with counted(services) as seen:`` lists every statement any
engine of the app runs inside the block (SQLite's BEGIN and COMMIT go to the driver
directly and are not among them). ``seen.compiled`` lists those SQLAlchemy compiled anew
rather than took from its statement cache: on a hot path, once its caches are warm, none
should be (a statement without a cache key is compiled on every run)."""

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.default import DefaultDialect


class Seen(list[str]):
    compiled: list[str]


@contextlib.contextmanager
def counted(services: Any) -> Iterator[Seen]:
    seen = Seen()
    seen.compiled = []

    def count(_conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        short = " ".join(statement.split())[:60]
        seen.append(short)
        # None: a statement db.run ran straight on SQLite, compiled once for good.
        if context is not None and getattr(context, "compiled", None) is not None \
                and context.cache_hit != DefaultDialect.CACHE_HIT:
            seen.compiled.append(f"{context.cache_hit.name}: {short}")

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
