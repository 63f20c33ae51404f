"""Which events a webhook endpoint subscribed to: exact names, ``prefix.*`` or ``*``."""

import json
from collections.abc import Iterable

from market.core.errors import Unprocessable
from market.core.outbox import EVENT_TYPES

_PREFIXES = frozenset(name.split(".")[0] for name in EVENT_TYPES if "." in name)


def check(events: Iterable[str]) -> list[str]:
    """The subscription as given, each entry a known name or pattern (422 naming the first that is not)."""
    wanted = list(dict.fromkeys(events))
    if not wanted:
        raise Unprocessable("events must name at least one event or pattern (e.g. \"order.*\")", kind="unknown-event",
                            extra={"errors": [{"field": "events", "message": "empty"}]})
    for name in wanted:
        if name == "*" or name in EVENT_TYPES:
            continue
        if name.endswith(".*") and name[:-2] in _PREFIXES:
            continue
        raise Unprocessable(f"unknown event {name!r}: give one of {', '.join(sorted(EVENT_TYPES))}, "
                            "a family such as \"order.*\", or \"*\"", kind="unknown-event",
                            extra={"errors": [{"field": "events", "message": f"unknown event {name!r}"}]})
    return wanted


def matches(patterns: list[str], event: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event:
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def loads(text: str) -> list[str]:
    return list(json.loads(text))
