"""The life of a sandbox query (docs/usage.md): reserved as ``running``, then ``answered`` or ``failed``."""

from enum import StrEnum

from market.core.statemachine import Machine, Transition
from market.usage.models import SandboxQuery


class QueryStatus(StrEnum):
    running = "running"  # its epsilon reserved, DuckDB at work
    answered = "answered"
    failed = "failed"  # its epsilon given back


# The answer's ledger entry is a confidential ``usage.query`` document (market.usage.queries).
SANDBOX_QUERY = Machine("sandbox_query", SandboxQuery, QueryStatus, QueryStatus.running, {
    "answer": Transition.of({QueryStatus.running}, QueryStatus.answered, None),
    "fail": Transition.of({QueryStatus.running}, QueryStatus.failed, None),
}, subject=lambda q: f"order:{q.order_id}")

MACHINES = (SANDBOX_QUERY,)
