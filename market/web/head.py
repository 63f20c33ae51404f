"""``HEAD`` on every ``GET`` route, once for the whole app (RFC 9110 §9.3.2).

Uptime checkers, link checkers and download managers ask ``HEAD``: the status and
headers a ``GET`` would give, without the body. Litestar answers ``405`` unless each
handler also registers ``HEAD`` (and then refuses handlers that return a body), so the
market does it at the edge instead: ``answer_head`` wraps the application before its
router. A ``HEAD`` request is routed and handled as a ``GET`` — same guards, same 401,
403 and 404, same headers, ``Content-Length`` included — and the response ends right
after its head: an empty final body is sent, and the handler's own body is never
produced. A stream (content downloads, the trades CSV) is not even started, so a
``HEAD`` reads no blob, runs no query of the CSV and records no delivery.

It also keeps ``Allow`` truthful: wherever ``GET`` is allowed, ``HEAD`` is listed too
(on ``OPTIONS`` and on ``405``).

Every ``HEAD`` goes this way, also to the few handlers that register ``HEAD`` themselves
(the static files of the docs page): they answer it as the ``GET`` it has become.
"""

from typing import Any

HEAD = "HEAD"


class _HeadAnswered(BaseException):
    """The head of a ``HEAD`` response is sent: stop the work behind it.

    A ``BaseException`` so that no exception handler of the application takes it for a
    failure (it is not one) and tries to answer a second time; ``answer_head`` catches it.
    """


def with_head(allow: bytes) -> bytes:
    """An ``Allow`` value with ``HEAD`` added wherever ``GET`` is listed."""
    methods = [m.strip() for m in allow.decode("latin-1").split(",") if m.strip()]
    if "GET" in methods and HEAD not in methods:
        methods.append(HEAD)
    return ", ".join(sorted(methods)).encode("latin-1")


def _headers_with_head(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, with_head(v) if k.lower() == b"allow" else v) for k, v in headers]


def answer_head(app: Any) -> Any:
    """Wrap an ASGI app (the router, before routing) so it answers ``HEAD`` as ``GET``
    without a body, and lists ``HEAD`` in ``Allow`` beside ``GET``."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if scope["method"] != HEAD:

            async def send_allow(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = _headers_with_head(list(message.get("headers") or []))
                await send(message)

            await app(scope, receive, send_allow)
            return

        scope["method"] = "GET"

        async def send_head(message: dict[str, Any]) -> None:
            if message["type"] != "http.response.start":
                return  # a body after the head: not sent (none comes; see below)
            # Routing is done: logs and metrics from here on name the method asked for.
            scope["method"] = HEAD
            message["headers"] = _headers_with_head(list(message.get("headers") or []))
            await send(message)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            raise _HeadAnswered

        try:
            await app(scope, receive, send_head)
        except* _HeadAnswered:  # alone, or in the group of a task group it crossed
            pass

    return wrapped


__all__ = ["answer_head", "with_head"]
