"""Structured logs with a request id, and Prometheus metrics, as one ASGI middleware."""

import logging
import secrets
import sys
import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from structlog.contextvars import bind_contextvars, clear_contextvars

REQUESTS = Counter("market_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("market_http_request_duration_seconds", "HTTP request latency", ["method", "route"])

log = structlog.get_logger("market")


def configure_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=numeric, force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _route_of(scope: dict[str, Any]) -> str:
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None)
    if paths:
        return sorted(paths)[0]
    return "unmatched"


def request_context_middleware(app: Any) -> Any:
    """Give each request an id (``X-Request-ID`` in and out), log it, and count it."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else secrets.token_hex(8)
        clear_contextvars()
        bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            REQUESTS.labels(scope["method"], route, str(status_holder["status"])).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status_holder["status"],
                ms=round(elapsed * 1000, 2),
            )

    return middleware
