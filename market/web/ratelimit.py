"""Rate limits (docs/API.md "Conventions"): 429 with ``Retry-After`` when a caller sends too much.

Two limits, both fixed windows, both settings (``0`` turns one off):

- every request, per caller: ``MARKET_RATE_LIMIT_PER_MINUTE`` per minute. The caller
  is the *account* of a valid bearer token (every token of one account shares one
  count, so minting tokens buys no capacity), else the client address: a request
  without a usable token (none, an empty or blank ``Authorization`` header, another
  scheme, an unknown or revoked token) counts against its address.
- anonymous sign-ups (``POST /v1/accounts`` without a valid token), per client
  address: ``MARKET_RATE_LIMIT_SIGNUPS_PER_HOUR`` per hour, on top of the first. Each
  sign-up adds a permanent ledger entry, hence the stricter limit.

Finding a token's account costs nothing once the process has seen the token
(``market.web.auth.resolve``, the credentials memo) and one query otherwise, which the
route then does not repeat.

``/health``, ``/ready`` and ``/metrics`` are never limited. A refused request reaches
no route, so it changes nothing. Counts live in this process (``MemoryCounter``) or,
when ``MARKET_REDIS_URL`` is set, in Redis (``RedisCounter``), shared by every
process: one atomic ``INCR`` per limit and request. When Redis cannot be reached the
request is let through (logged): limits protect capacity, and an outage of the
counter must not become an outage of the market.

The client address is the ASGI ``client``; behind a proxy, run uvicorn with
``--forwarded-allow-ips`` so that it is the caller's, not the proxy's.
"""

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from market.core.errors import TooManyRequests
from market.core.logs import log
from market.core.services import Services
from market.web import auth

UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
SIGN_UP_PATHS = frozenset({"/v1/accounts", "/v1/accounts/"})


@dataclass(frozen=True)
class Limit:
    name: str
    count: int  # requests allowed per window
    window: int  # seconds


class Counter(Protocol):
    async def hit(self, key: str, window: int, now: float) -> int:
        """Count one request for ``key`` in the window containing ``now``; the count so far."""
        ...

    async def close(self) -> None: ...


class MemoryCounter:
    """Counts of this process only, forgotten as their windows pass."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self.max_keys = max_keys

    async def hit(self, key: str, window: int, now: float) -> int:
        number = int(now // window)
        held = self._counts.get(key)
        count = held[1] + 1 if held is not None and held[0] == number else 1
        if held is None and len(self._counts) >= self.max_keys:
            self._forget_old(now)
        self._counts[key] = (number, count)
        return count

    def _forget_old(self, now: float) -> None:
        # Keys carry their window length (see RateLimiter._key); drop passed windows.
        stale = [k for k, (n, _) in self._counts.items() if n < int(now // int(k.rsplit(":", 1)[1]))]
        for key in stale:
            del self._counts[key]
        if len(self._counts) >= self.max_keys:  # all current: a flood of callers; start over
            self._counts.clear()

    async def close(self) -> None:
        pass


_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisCounter:
    """Counts in Redis, shared by every process using the same ``url`` and ``prefix``."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._incr = self._redis.register_script(_INCR)
        self.prefix = prefix

    async def hit(self, key: str, window: int, now: float) -> int:
        number = int(now // window)
        # The window number is in the key, so processes agree on windows without
        # coordinating, and the key expires once its window has passed.
        return int(await self._incr(keys=[f"{self.prefix}:rl:{key}:{number}"], args=[window + 1]))

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """Decides per request; ``check`` raises ``TooManyRequests`` with ``Retry-After``."""

    def __init__(self, counter: Counter, per_minute: int, signups_per_hour: int) -> None:
        self.counter = counter
        self.clock = time.time  # wall time: processes sharing Redis agree on windows
        self.general = Limit("all", per_minute, 60) if per_minute > 0 else None
        self.signups = Limit("signup", signups_per_hour, 3600) if signups_per_hour > 0 else None

    @staticmethod
    def _key(limit: Limit, caller: str) -> str:
        return f"{limit.name}:{caller}:{limit.window}"

    async def _hit(self, limit: Limit, caller: str, now: float) -> None:
        try:
            count = await self.counter.hit(self._key(limit, caller), limit.window, now)
        except Exception as exc:  # noqa: BLE001 - fail open, see the module docstring
            log.warning("rate limit counter unavailable; request let through", error=type(exc).__name__)
            return
        if count > limit.count:
            retry_after = max(1, math.ceil((int(now // limit.window) + 1) * limit.window - now))
            what = "sign-ups from this address" if limit is self.signups else "requests from this caller"
            raise TooManyRequests(
                f"too many {what}: at most {limit.count} per {limit.window} s; retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )

    async def check(self, method: str, path: str, account: str | None, address: str) -> None:
        """Count one request of ``account`` (None: anonymous, counted by ``address``)."""
        if path in UNLIMITED_PATHS:
            return
        now = self.clock()
        if self.signups is not None and method == "POST" and account is None and path in SIGN_UP_PATHS:
            await self._hit(self.signups, "addr:" + address, now)
        if self.general is not None:
            await self._hit(self.general, "acct:" + account if account else "addr:" + address, now)


def limiter_from(settings: Any) -> RateLimiter:
    counter: Counter = RedisCounter(settings.redis_url, settings.redis_prefix) if settings.redis_url else MemoryCounter()
    return RateLimiter(counter, settings.rate_limit_per_minute, settings.rate_limit_signups_per_hour)


async def _account(services: Services, scope: dict[str, Any]) -> str | None:
    """The account of the request's bearer token, or None when it has no usable one.
    The credential found is left in the scope for ``market.web.auth.authenticate``."""
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    token = auth.bearer_token(header)
    if token is None:
        return None
    try:
        credential = await auth.resolve(services, token)
    except Exception as exc:  # noqa: BLE001 - the route will meet (and report) the same failure
        log.warning("could not resolve a token for the rate limits", error=type(exc).__name__)
        return None
    scope[auth.RESOLVED] = (token, credential, services.credentials.generation)
    return credential.account.id if credential is not None else None


def rate_limit_middleware(app: Any) -> Any:
    """ASGI middleware applying the services' limiter (``app.state.services.limiter``)
    before the route runs."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            services: Services | None = getattr(scope["litestar_app"].state, "services", None)
            if services is not None and scope["path"] not in UNLIMITED_PATHS:
                account = await _account(services, scope)
                limiter = services.limiter
                client = scope.get("client")
                await limiter.check(scope["method"], scope["path"], account, client[0] if client else "unknown")
        await app(scope, receive, send)

    return middleware


__all__ = ["MemoryCounter", "RateLimiter", "RedisCounter", "limiter_from", "rate_limit_middleware"]
