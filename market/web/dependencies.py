"""A request's dependencies resolved one after another, not in a task group.

Litestar resolves the dependencies of a handler that do not depend on each other
concurrently, in an anyio task group (``KwargsModel.resolve_dependencies``): a route
taking ``db`` and ``ctx`` started a group and a task for each on every request. Ours
do no waiting worth overlapping (a session is made without a connection, the caller
is read from memory), and the group cost more than they do: ~0.1 ms a request, a
tenth of a metered look-up. Resolved in turn instead: the same values, the same
clean-ups, and the first failure raised, as before.
"""

from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection

# A route's ``opt``: its GET reads a few rows by key, so its read session may run in the
# event loop's thread on SQLite (``Services.point_read_sessionmaker``). Not for a route
# that scans: a long read there would hold every other request.
POINT_READS = "point_reads"


async def _in_turn(self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any],
                   kwargs: dict[str, Any]) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


def resolve_in_turn() -> None:
    """Make every handler resolve its dependencies in turn (for the whole process)."""
    KwargsModel.resolve_dependencies = _in_turn  # type: ignore[method-assign]
