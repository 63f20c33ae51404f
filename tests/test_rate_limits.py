"""Rate limits (docs/API.md "Conventions"; issue fault 8): 429 problem+json with Retry-After.

The limiter's clock is pinned in these tests so that a window cannot end in the
middle of one (the limits are fixed windows of wall time).
"""

import secrets
import socket
from typing import Any

import pytest

from market.web.ratelimit import MemoryCounter, RateLimiter, RedisCounter
from tests.conftest import assert_problem
from tests.registry_support import own_app

REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = 1_800_000_030.0  # 30 s into a minute, 30 s into an hour


def pin_clock(app: Any, now: float = NOW) -> None:
    app.client.app.state.services.limiter.clock = lambda: now


async def account_ids(app: Any) -> list[str]:
    r = await app.client.get("/v1/accounts", params={"limit": 500}, headers=app.operator.auth)
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()["items"]]


def sign_up_body() -> dict[str, Any]:
    return {"name": "Someone", "kind": "individual", "roles": ["buyer"]}


async def test_anonymous_sign_ups_are_limited_per_address(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, rate_limit_signups_per_hour=2) as app:
        pin_clock(app)
        for _ in range(2):
            assert (await app.client.post("/v1/accounts", json=sign_up_body())).status_code == 201
        before = await account_ids(app)

        r = await app.client.post("/v1/accounts", json=sign_up_body())
        problem = assert_problem(r, 429, "too-many-requests")
        assert r.headers["Retry-After"] == "3570"  # the hour's window ends in 59.5 minutes, rounded up
        assert "sign-ups" in problem["detail"]
        assert await account_ids(app) == before  # nothing was created (the ledger entry goes with the row) ...
        # ... and an operator creating accounts is not held to the anonymous limit.
        r = await app.client.post("/v1/accounts", json=sign_up_body(), headers=app.operator.auth)
        assert r.status_code == 201, r.text
        # The next hour opens the door again.
        pin_clock(app, NOW + 3600)
        assert (await app.client.post("/v1/accounts", json=sign_up_body())).status_code == 201


def _unused(token: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in token.items() if k != "last_used_at"}


async def test_accounts_and_addresses_have_separate_counts(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, rate_limit_per_minute=5) as app:
        pin_clock(app)
        first = await app.parties.sign_up(["buyer"])  # one anonymous request from the address
        other = await app.parties.sign_up(["buyer"])  # the address's second
        for _ in range(4):  # the first account's 1st to 4th requests
            assert (await app.client.get("/v1/accounts/me", headers=first.auth)).status_code == 200
        tokens = (await app.client.get("/v1/accounts/me/tokens", headers=first.auth)).json()["items"]  # its 5th
        r = await app.client.get("/v1/accounts/me", headers=first.auth)
        assert_problem(r, 429, "too-many-requests")
        assert r.headers["Retry-After"] == "30"
        # Another account, and anonymous callers at the same address, go on.
        assert (await app.client.get("/v1/accounts/me", headers=other.auth)).status_code == 200
        for _ in range(3):  # the address's 3rd to 5th requests
            assert (await app.client.get("/v1/ledger/checkpoint")).status_code == 200
        assert_problem(await app.client.get("/v1/ledger/checkpoint"), 429, "too-many-requests")
        assert (await app.client.get("/v1/accounts/me", headers=other.auth)).status_code == 200
        # A refused write changes nothing.
        assert_problem(await app.client.post("/v1/accounts/me/tokens", json={}, headers=first.auth), 429)
        pin_clock(app, NOW + 60)
        # (last_used_at aside: the market writes it after answering, and may not have yet)
        after = (await app.client.get("/v1/accounts/me/tokens", headers=first.auth)).json()["items"]
        assert [_unused(t) for t in after] == [_unused(t) for t in tokens]
        # Operations routes are never limited (/metrics answers 401 without a staff token).
        for path in ("/health", "/ready", "/metrics"):
            for _ in range(10):
                assert (await app.client.get(path)).status_code in (200, 401), path


async def test_every_token_of_an_account_shares_its_count(databases, tmp_path) -> None:
    """Minting tokens buys no capacity: the limit is per account, not per token."""
    async with own_app(databases, tmp_path, rate_limit_per_minute=6) as app:
        pin_clock(app)
        party = await app.parties.sign_up(["buyer"])
        minted = []
        for _ in range(3):  # the account's 1st to 3rd requests
            r = await app.client.post("/v1/accounts/me/tokens", json={}, headers=party.auth)
            assert r.status_code == 201, r.text
            minted.append({"Authorization": f"Bearer {r.json()['token']}"})
        for auth in minted:  # its 4th to 6th, one per new token
            assert (await app.client.get("/v1/accounts/me", headers=auth)).status_code == 200
        for auth in [party.auth, *minted]:  # a 7th from any of its tokens is refused
            assert_problem(await app.client.get("/v1/accounts/me", headers=auth), 429, "too-many-requests")


@pytest.mark.parametrize("header", ["", " ", "\t", "Basic Zm9vOmJhcg==", "Bearer", "Bearer   ", "garbage"])
async def test_an_empty_or_useless_authorization_header_is_anonymous_for_the_sign_up_limit(
        databases, tmp_path, header) -> None:
    async with own_app(databases, tmp_path, rate_limit_signups_per_hour=1) as app:
        pin_clock(app)
        assert (await app.client.post("/v1/accounts", json=sign_up_body())).status_code == 201
        before = await account_ids(app)
        r = await app.client.post("/v1/accounts", json=sign_up_body(), headers={"Authorization": header})
        assert r.status_code in (401, 429), r.text  # never a sign-up past the limit
        if r.status_code == 429:
            assert "sign-ups" in r.json()["detail"]
        assert await account_ids(app) == before


async def test_an_empty_authorization_header_is_no_token(databases, tmp_path) -> None:
    """An empty header is treated as none (anonymous), for the limits and for the route."""
    async with own_app(databases, tmp_path, rate_limit_signups_per_hour=2) as app:
        pin_clock(app)
        for _ in range(2):
            r = await app.client.post("/v1/accounts", json=sign_up_body(), headers={"Authorization": ""})
            assert r.status_code == 201, r.text
        r = await app.client.post("/v1/accounts", json=sign_up_body(), headers={"Authorization": ""})
        assert_problem(r, 429, "too-many-requests")


async def test_an_unknown_token_counts_against_its_address(databases, tmp_path) -> None:
    """Made-up tokens do not each get a fresh count."""
    async with own_app(databases, tmp_path, rate_limit_per_minute=3) as app:
        pin_clock(app)
        for i in range(3):
            r = await app.client.get("/v1/accounts/me", headers={"Authorization": f"Bearer mkt_made_up_{i}"})
            assert_problem(r, 401, "bad-token")
        r = await app.client.get("/v1/accounts/me", headers={"Authorization": "Bearer mkt_made_up_x"})
        assert_problem(r, 429, "too-many-requests")


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


async def test_processes_sharing_redis_share_the_count(databases, tmp_path_factory) -> None:
    if not redis_reachable():
        pytest.skip("no Redis on 127.0.0.1:6379")
    shared = {"redis_url": REDIS_URL, "redis_prefix": f"market-test-{secrets.token_hex(6)}", "rate_limit_per_minute": 3}
    async with own_app(databases, tmp_path_factory.mktemp("a"), **shared) as a, \
            own_app(databases, tmp_path_factory.mktemp("b"), **shared) as b:
        pin_clock(a)
        pin_clock(b)
        assert (await a.client.get("/v1/ledger/key")).status_code == 200
        assert (await b.client.get("/v1/ledger/key")).status_code == 200
        assert (await a.client.get("/v1/ledger/key")).status_code == 200
        r = await b.client.get("/v1/ledger/key")  # the fourth from this address, counted across both
        assert_problem(r, 429, "too-many-requests")
        assert r.headers["Retry-After"] == "30"


async def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = RateLimiter(RedisCounter("redis://127.0.0.1:1/0", "market-test"), per_minute=1, signups_per_hour=1)
    try:
        for _ in range(3):
            await limiter.check("GET", "/v1/assets", None, "10.0.0.1")
    finally:
        await limiter.counter.close()


async def test_memory_counter_forgets_passed_windows() -> None:
    counter = MemoryCounter(max_keys=2)
    assert await counter.hit("all:addr:a:60", 60, NOW) == 1
    assert await counter.hit("all:addr:a:60", 60, NOW) == 2
    assert await counter.hit("all:addr:b:60", 60, NOW) == 1
    # A third caller in the next window: the passed window's keys go, the count starts afresh.
    assert await counter.hit("all:addr:c:60", 60, NOW + 60) == 1
    assert await counter.hit("all:addr:a:60", 60, NOW + 60) == 1
