"""localstripe (a fake Stripe API) for tests: one server per test session, and helpers
that play the buyer's part and receive webhooks.

Use the ``localstripe`` fixture (session-scoped; yields the base URL, e.g.
``http://127.0.0.1:41234``) with ``LOCALSTRIPE_KEY`` as the secret key, e.g.
``make_settings(..., stripe_secret_key=LOCALSTRIPE_KEY, stripe_api_base=localstripe)``.

The server is localstripe's aiohttp app started by this file (``python
localstripe_server.py PORT_FILE``) rather than ``python -m localstripe --port N``, to:

- bind 127.0.0.1 on a port the kernel picks, written to ``PORT_FILE`` (no race for a
  free port, nothing listening on other interfaces);
- keep no state on disk (localstripe otherwise rewrites one pickle in the system temp directory
  after every POST, shared by every run on the machine);
- honour ``Idempotency-Key`` as Stripe does, which localstripe ignores: a repeated key
  with the same parameters replays the first response, with other parameters it is a
  400 ``idempotency_error``.

Facts of localstripe 1.15 the helpers rely on:

- ``confirm`` refuses a ``payment_method`` argument; the buyer's card is set on the
  PaymentIntent first (``pay``).
- ``pm_card_visa`` succeeds; ``pm_card_chargeCustomerFail`` (4000000000000341) is
  declined at the charge: ``confirm`` answers 402 ``card_declined``, the PaymentIntent
  goes back to ``requires_payment_method`` with ``last_payment_error.code ==
  "card_declined"`` and ``payment_intent.payment_failed`` is sent.
  ``pm_card_visa_chargeDeclined`` (4000000000000002) is declined only when attached to
  a customer: charged directly it succeeds.
- A declined PaymentIntent cannot be confirmed again there (its failed charge keeps it
  in ``requires_payment_method``): a retry is a new PaymentIntent, which is what the
  market does (a new attempt, a new idempotency key).
- Webhooks: ``POST /_config/webhooks/<id>`` with form fields ``url``, ``secret`` and
  optional ``events[]``; every event goes to every registered URL about 1 s after it
  happens, signed like Stripe's (``Stripe-Signature: t=…,v1=…``), once, never retried.
  Refunds send no event.
"""

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

LOCALSTRIPE_KEY = "sk_test_localstripe_market"
WEBHOOK_SECRET = "whsec_localstripe_market"
GOOD_CARD = "pm_card_visa"
DECLINING_CARD = "pm_card_chargeCustomerFail"
START_TIMEOUT = 20.0


# --- the server ------------------------------------------------------------------------


class LocalStripe:
    """A localstripe process; ``start()`` returns once it answers."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port_file = workdir / "port"
        self.log_path = workdir / "localstripe.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(self.port_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.port_file.exists():
            self._check_alive(deadline)
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{int(self.port_file.read_text())}"
        while True:
            self._check_alive(deadline)
            try:
                r = httpx.get(f"{self.base_url}/v1/customers", headers=_auth(), timeout=2)
                if r.status_code == 200:
                    return self.base_url
            except httpx.TransportError:
                pass
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"localstripe exited with {self.process.returncode}: {self._log_tail()}")
        if time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"localstripe did not answer within {START_TIMEOUT} s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


# One server per session however many modules or conftests register the fixture (each
# registration is a fixture of its own to pytest): started by the first, stopped by the last.
_shared: dict[str, Any] = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a localstripe server running for the test session."""
    if _shared["server"] is None:
        server = LocalStripe(tmp_path_factory.mktemp("localstripe"))
        server.start()
        _shared["server"] = server
    _shared["users"] += 1
    try:
        yield _shared["server"].base_url
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["server"].stop()
            _shared["server"] = None


# --- the buyer's part ------------------------------------------------------------------


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {LOCALSTRIPE_KEY}"}


def _api(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers=_auth(), timeout=10)


async def pay(base_url: str, intent_id: str, card: str = GOOD_CARD) -> dict[str, Any]:
    """Play the buyer: put ``card`` on the PaymentIntent and confirm it. Returns the
    PaymentIntent as it then is (``status`` ``succeeded``, or ``requires_payment_method``
    when the card was declined)."""
    async with _api(base_url) as http:
        r = await http.post(f"/v1/payment_intents/{intent_id}", data={"payment_method": card})
        assert r.status_code == 200, r.text
        r = await http.post(f"/v1/payment_intents/{intent_id}/confirm")
        assert r.status_code in (200, 402), r.text  # 402: declined
        if r.status_code == 402:
            r = await http.get(f"/v1/payment_intents/{intent_id}")
            assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def decline(base_url: str, intent_id: str) -> dict[str, Any]:
    """Play a buyer whose card is declined (``card_declined``); Stripe sends
    ``payment_intent.payment_failed``. Returns the PaymentIntent."""
    intent = await pay(base_url, intent_id, DECLINING_CARD)
    assert intent["status"] == "requires_payment_method", intent
    assert intent["last_payment_error"]["code"] == "card_declined", intent
    return intent


async def configure_webhook(base_url: str, url: str, secret: str = WEBHOOK_SECRET,
                            events: list[str] | None = None, webhook_id: str | None = None) -> str:
    """Have localstripe send events (all, or ``events``) to ``url`` signed with ``secret``.
    Registering the same ``webhook_id`` again replaces it. Returns the id."""
    webhook_id = webhook_id or f"wh_{uuid.uuid4().hex[:12]}"
    data: dict[str, Any] = {"url": url, "secret": secret}
    if events:
        data["events[]"] = events
    async with _api(base_url) as http:
        r = await http.post(f"/_config/webhooks/{webhook_id}", data=data)
        assert r.status_code == 200, r.text
    return webhook_id


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str | None  # the Stripe-Signature header
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every POST it receives (raw body and
    ``Stripe-Signature``) and answers 200. Use as a context manager."""

    deliveries: list[Delivery] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhook"

    def __enter__(self) -> "WebhookReceiver":
        deliveries, lock = self.deliveries, threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    deliveries.append(Delivery(body, self.headers.get("Stripe-Signature"), dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    async def wait_for(self, match: Callable[[Delivery], bool], timeout: float = 10.0) -> Delivery:
        """The first delivery ``match`` accepts, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            for delivery in list(self.deliveries):
                if match(delivery):
                    return delivery
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching webhook in {timeout} s; got {len(self.deliveries)} others")
            await asyncio.sleep(0.05)


# --- run as a script: the server process -------------------------------------------------


def _idempotency_middleware() -> Any:
    """Stripe's idempotent requests (https://docs.stripe.com/api/idempotent_requests):
    the first response to a POST with an ``Idempotency-Key`` (2xx, or a 402 decline) is
    kept and replayed for the same key and parameters; other parameters are refused."""
    from aiohttp import web

    kept: dict[tuple[str, str], tuple[bytes, int, bytes]] = {}
    lock = asyncio.Lock()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        scope = (request.headers.get("Authorization", ""), key)
        fingerprint = request.path.encode() + b"\n" + await request.read()
        async with lock:
            if scope in kept:
                first, status, body = kept[scope]
                if first != fingerprint:
                    return web.json_response({"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same parameters "
                                   "they were first used with.",
                    }}, status=400)
                return web.Response(body=body, status=status, content_type="application/json",
                                    headers={"Idempotent-Replayed": "true"})
            response = await handler(request)
            if 200 <= response.status < 300 or response.status == 402:
                body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
                kept[scope] = (fingerprint, response.status, body)
            return response

    return middleware


def _serve(port_file: Path) -> None:
    import logging

    from aiohttp import web
    from localstripe import resources, server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    server.app.middlewares.insert(0, _idempotency_middleware())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(sock.getsockname()[1]))
    os.replace(partial, port_file)
    web.run_app(server.app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
