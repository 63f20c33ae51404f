"""Byte ranges of a download (RFC 9110 §14): the one range to send, or the whole content.

Only a single range is served as a range; several ranges, an invalid one or an
``If-Range`` that does not match the content's ETag get the whole representation, as
RFC 9110 allows. A first position beyond the content is ``416`` with ``Content-Range:
bytes */<size>``.
"""

import re
from dataclasses import dataclass

from market.core.errors import DomainError
from market.registry.models import AssetRevision


class RangeNotSatisfiable(DomainError):
    status, kind, title = 416, "range-not-satisfiable", "Range not satisfiable"


@dataclass(frozen=True)
class ByteRange:
    first: int
    last: int  # inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1


_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


# Any position with more digits (leading zeros aside) is beyond every possible content.
_MAX_POSITION_DIGITS = 18
_BEYOND = 10**_MAX_POSITION_DIGITS


def _position(digits: str) -> int | None:
    """A byte position of a range, without converting thousands of digits (Python
    refuses ints of over 4,300 digits from text, and would spend time on them):
    anything longer than 18 digits is ``_BEYOND``, larger than any content. RFC 9110
    §14.1.2 then gives the right answer by itself: a first position beyond the
    content is 416, a last position beyond it means "to the end", and a suffix longer
    than the content is the whole content."""
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else _BEYOND


def etag_of(rev: AssetRevision) -> str:
    return f'"{rev.sha256}"'


def parse_range(header: str | None, size: int, if_range: str | None = None,
                etag: str | None = None) -> ByteRange | None:
    """The one range to send, or None for the whole representation (200). Raises
    RangeNotSatisfiable (416) for a single range that starts beyond the content."""
    if not header or size <= 0:
        return None
    if if_range is not None and (etag is None or if_range.strip() != etag):
        return None  # the client's copy is of other content (or a date we cannot match): send it whole
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    parts = [p for p in specs.split(",") if p.strip()]
    if len(parts) != 1:
        return None  # several ranges: served whole (see the module's docstring)
    match = _SPEC.match(parts[0])
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    start, end = _position(match.group(1)), _position(match.group(2))
    unsatisfiable = RangeNotSatisfiable(f"the content is {size} bytes; the range {parts[0].strip()} is outside it",
                                        headers={"Content-Range": f"bytes */{size}"})
    if start is None:  # suffix: the last n bytes
        n = end
        assert n is not None  # the spec has at least one of its two positions
        if n == 0:
            raise unsatisfiable
        return ByteRange(max(0, size - n), size - 1)
    first = start
    last = end if end is not None else size - 1
    if end is not None and last < first:
        return None  # invalid: ignored
    if first >= size:
        raise unsatisfiable
    return ByteRange(first, min(last, size - 1))


__all__ = ["ByteRange", "RangeNotSatisfiable", "etag_of", "parse_range"]
