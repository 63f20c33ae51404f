"""The request class of the app: JSON bodies nested deeper than ``MAX_JSON_DEPTH`` are refused.

A body of 50,000 nested arrays fits in the size limit, and decoding it exhausted
Python's recursion limit inside the JSON decoder (``RecursionError``, a 500). No request
of this API nests more than a handful of levels, so a body nested deeper than
``MAX_JSON_DEPTH`` is a 422 validation error on ``body``, decided before decoding.

The check is cheap where it matters: a body with fewer than ``MAX_JSON_DEPTH`` opening
brackets in all cannot be that deep (one C-speed count per bracket kind); only other
bodies are scanned, once, byte by byte.
"""

from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import ValidationException

MAX_JSON_DEPTH = 64

_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` (JSON text, well-formed or not) nests arrays and objects more
    than ``limit`` deep. Brackets inside strings do not count."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif byte in _CLOSE:
            depth -= 1
    return False


def _too_deep() -> ValidationException:
    message = f"the JSON body nests arrays and objects more than {MAX_JSON_DEPTH} deep"
    return ValidationException(detail=message, extra=[{"key": "body", "message": message}])


class MarketRequest(Request):
    async def json(self) -> Any:
        if json_depth_exceeds(await self.body()):
            raise _too_deep()
        try:
            return await super().json()
        except RecursionError:  # deeper structures the scan cannot see (none known); still the body's fault
            raise _too_deep() from None


__all__ = ["MAX_JSON_DEPTH", "MarketRequest", "json_depth_exceeds"]


def json_body(body: bytes) -> Response[Any]:
    """A response of JSON serialized already (built, or kept in memory): the route's
    return annotation still names its schema for the OpenAPI document."""
    return Response(body, media_type=MediaType.JSON)
