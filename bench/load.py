"""The load generator of the benchmarks that send a mix of requests: keep-alive
connections spread over client processes (uvloop where installed), each cycling
through the requests from its own starting point, one at a time, and keeping the
latency of every answer. Cheap per request (no HTTP library), so that the server, not
the client, is what is measured.
"""

import argparse
import asyncio
import statistics
import time
from typing import Any

# --- the load generator: a mix of requests, latency of each answer ---------------------


class _MixConn(asyncio.Protocol):
    """One keep-alive connection sending the mix's requests in turn, one at a time."""

    def __init__(self, requests: list[bytes], start: int, stats: dict[str, Any], done: asyncio.Future[None]) -> None:
        self.requests, self.at, self.stats, self.done = requests, start % len(requests), stats, done
        self.buf = bytearray()
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.requests[self.at])  # type: ignore[union-attr]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError("response without Content-Length")
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:line_end if line_end > 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            latency = time.perf_counter() - self.sent
            status = int(head[9:12])
            del self.buf[:total]
            if self.stats["counting"]:
                self.stats["latencies"][self.at].append(latency)
                if not 200 <= status < 300:
                    self.stats["bad"] += 1
                    self.stats["statuses"][status] = self.stats["statuses"].get(status, 0) + 1
            if self.stats["stop"]:
                self.transport.close()  # type: ignore[union-attr]
                return
            self.at = (self.at + 1) % len(self.requests)
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _load(port: int, requests: list[bytes], first: int, connections: int, warmup: float,
                seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"latencies": [[] for _ in requests], "bad": 0, "statuses": {}, "counting": False,
                             "stop": False}
    dones = [loop.create_future() for _ in range(connections)]
    for i, done in enumerate(dones):
        await loop.create_connection(lambda d=done, s=first + i: _MixConn(requests, s, stats, d),  # type: ignore[misc]
                                     "127.0.0.1", port)
    await asyncio.sleep(warmup)
    stats["counting"] = True
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    stats["counting"] = False
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stats["stop"] = True
    await asyncio.wait_for(asyncio.gather(*dones), timeout=120)
    return {"latencies": stats["latencies"], "bad": stats["bad"], "statuses": stats["statuses"],
            "elapsed": elapsed, "cpu": cpu}


def _load_process(args: tuple[int, list[bytes], int, int, float, float]) -> dict[str, Any]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_load(*args))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0–100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered))) - 1))]


def measure(pool: Any, port: int, requests: list[bytes], args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Requests/s and latencies of ``requests`` (cycled) under ``args.connections`` connections."""
    share = [args.connections // args.clients + (i < args.connections % args.clients) for i in range(args.clients)]
    starts = [sum(share[:i]) for i in range(len(share))]
    parts = pool.map(_load_process, [(port, requests, s, n, args.warmup, seconds)
                                     for s, n in zip(starts, share, strict=False) if n])
    per = [[x for p in parts for x in p["latencies"][i]] for i in range(len(requests))]
    every = [x for lat in per for x in lat]
    statuses: dict[int, int] = {}
    for p in parts:
        for code, n in p["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    elapsed = max(p["elapsed"] for p in parts)
    if not every:
        raise RuntimeError("no answer came back while counting")
    return {
        "rps": len(every) / elapsed, "count": len(every), "bad": sum(p["bad"] for p in parts), "statuses": statuses,
        "p50": percentile(every, 50), "p95": percentile(every, 95), "mean": statistics.fmean(every),
        "per": [{"n": len(lat), "p50": percentile(lat, 50) if lat else 0.0, "p95": percentile(lat, 95) if lat else 0.0}
                for lat in per],
        "client_cpu": sum(p["cpu"] for p in parts) / elapsed,
    }
