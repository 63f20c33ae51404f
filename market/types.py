"""Column types and time helpers shared by every domain package."""

from datetime import UTC, datetime

from ledger._time import UTCDateTime, utcnow


def rfc3339(value: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``, as every API time is written."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = ["UTCDateTime", "rfc3339", "utcnow"]
