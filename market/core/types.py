"""Column types and time helpers shared by every domain package."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

from ledger._time import UTCDateTime, utcnow

# The largest value of a 32-bit integer column (PostgreSQL ``integer``): the bound of
# every integer query parameter compared with one (revisions, chunk indexes), so that
# a larger number is 422 naming the parameter, not an overflow in the database.
INT32_MAX = 2**31 - 1


def rfc3339(value: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``, as every API time is written."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _only_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


# A JSON boolean and nothing else ("yes", 1, "true" are refused). Pydantic's StrictBool
# is not enough: the web framework validates request bodies with strict=False.
JsonBool = Annotated[bool, BeforeValidator(_only_bool)]

__all__ = ["INT32_MAX", "JsonBool", "UTCDateTime", "rfc3339", "utcnow"]
