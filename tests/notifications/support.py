"""Helpers for notification tests: a local webhook receiver, an app of its own with
fast notification settings, inbox and webhook helpers."""

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.registry_support import own_app

# Retries come fast in tests; receivers are local, so private addresses are allowed.
FAST = {"webhook_allow_private": True, "webhook_retry_schedule": "0.05s,0.1s", "notify_interval": 0.05,
        "webhook_timeout": 2.0, "clock_interval": 0.2}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """A local HTTP server that records every POST; ``fail[path]`` is how many times that
    path answers ``status`` (default 500) before answering 204; ``always_fail`` paths never succeed."""

    requests: list[Received] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    status: int = 500
    refuse: Callable[[Received], bool] | None = None  # requests answered ``status`` whatever else holds
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with receiver.lock:
                    receiver.requests.append(got)
                    left = receiver.fail.get(self.path, 0)
                    failing = self.path in receiver.always_fail or left > 0 or \
                        (receiver.refuse is not None and receiver.refuse(got))
                    if left > 0:
                        receiver.fail[self.path] = left - 1
                self.send_response(receiver.status if failing else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 15.0, every: float = 0.05) -> Any:
    """Wait until ``check()`` returns something truthy; return it (fail after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds}s: {check}")
        await asyncio.sleep(every)


async def inbox(client: Any, who: Any, **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/v1/notifications", headers=who.auth, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def events_of(client: Any, who: Any, subject: str | None = None) -> list[str]:
    return [n["event"] for n in await inbox(client, who) if subject is None or n["subject"] == subject]


async def wait_event(client: Any, who: Any, event: str, subject: str | None = None,
                     seconds: float = 15.0) -> dict[str, Any]:
    async def found() -> Any:
        return next((n for n in await inbox(client, who) if n["event"] == event
                     and (subject is None or n["subject"] == subject)), None)

    return await eventually(found, seconds)  # type: ignore[no-any-return]


async def quiet(client: Any, seconds: float = 0.5) -> None:
    """Let the dispatcher run a few rounds (for checks that something did not arrive)."""
    await asyncio.sleep(seconds)


async def hook(client: Any, who: Any, url: str, events: list[str] | None = None, **headers: str) -> dict[str, Any]:
    r = await client.post("/v1/webhooks", json={"url": url, "events": events or ["*"]},
                          headers={**who.auth, **headers})
    assert r.status_code == 201, r.text
    return dict(r.json())


__all__ = ["FAST", "Received", "Receiver", "eventually", "events_of", "hook", "inbox", "own_app", "quiet",
           "wait_event"]
