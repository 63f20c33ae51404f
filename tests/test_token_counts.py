"""Live tokens are counted on one row per account (``token_counts``): the cap holds under
requests at once (PostgreSQL with MARKET_TEST_DATABASE_URL: truly concurrent), a token
revoked twice at once frees one place, and migration 0024 counts what a market in use
already holds."""

import asyncio
from typing import Any

import httpx
from sqlalchemy import text

from market.core import migrations
from tests.conftest import assert_problem
from tests.registry_support import own_app


def _run(client: Any, work: Any) -> Any:
    return client.blocking_portal.call(work)


def _at_once(client: Any, method: str, url: str, auth: dict[str, str], n: int) -> list[httpx.Response]:
    """``n`` requests sent together in the app's own loop (the test client sends one at a time)."""
    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return list(await asyncio.gather(*[c.request(method, url, headers=auth, json={} if method == "POST" else None)
                                               for _ in range(n)]))

    return list(_run(client, send))


async def _live(client: Any, account_id: str) -> int:
    async def read() -> int:
        async with client.app.state.services.read_sessionmaker() as s:
            return int((await s.execute(text("SELECT live FROM token_counts WHERE account_id = :a"),
                                        {"a": account_id})).scalar_one())

    return int(_run(client, read))


async def test_the_cap_holds_for_requests_at_once(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path, max_tokens_per_account=4) as app:
        party = await app.parties.sign_up(["buyer"])  # holds its sign-up token: three places left
        answers = _at_once(app.client, "POST", "/v1/accounts/me/tokens", party.auth, 8)
        assert sorted(r.status_code for r in answers) == [201] * 3 + [409] * 5
        for r in answers:
            if r.status_code == 409:
                assert_problem(r, 409, "too-many-tokens")
        listed = (await app.client.get("/v1/accounts/me/tokens", headers=party.auth)).json()["items"]
        assert len(listed) == 4 and await _live(app.client, party.id) == 4


async def test_a_token_revoked_twice_at_once_frees_one_place(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path, max_tokens_per_account=3) as app:
        party = await app.parties.sign_up(["buyer"])
        made = [(await app.client.post("/v1/accounts/me/tokens", json={}, headers=party.auth)).json()
                for _ in range(2)]
        assert await _live(app.client, party.id) == 3
        url = f"/v1/accounts/me/tokens/{made[0]['id']}"
        answers = _at_once(app.client, "DELETE", url, party.auth, 4)
        assert sorted(r.status_code for r in answers) == [204, 409, 409, 409]
        assert await _live(app.client, party.id) == 2
        assert (await app.client.post("/v1/accounts/me/tokens", json={}, headers=party.auth)).status_code == 201
        assert_problem(await app.client.post("/v1/accounts/me/tokens", json={}, headers=party.auth),
                       409, "too-many-tokens")
        # A stranger cannot revoke it, and its count does not move.
        other = await app.parties.sign_up(["buyer"])
        assert_problem(await app.client.delete(f"/v1/accounts/me/tokens/{made[1]['id']}", headers=other.auth), 404)
        assert await _live(app.client, party.id) == 3 and await _live(app.client, other.id) == 1


async def test_migration_0024_counts_the_live_tokens_held(databases: Any, tmp_path: Any) -> None:
    async with own_app(databases, tmp_path, max_tokens_per_account=4) as app:
        client = app.client
        services = client.app.state.services
        party = await app.parties.sign_up(["buyer"])
        made = [(await client.post("/v1/accounts/me/tokens", json={}, headers=party.auth)).json() for _ in range(2)]
        assert (await client.delete(f"/v1/accounts/me/tokens/{made[0]['id']}", headers=party.auth)).status_code == 204
        quiet = await app.parties.sign_up(["provider"])

        async def migrate_again() -> None:
            await migrations.downgrade(services.engine, "0023")
            await migrations.upgrade(services.engine)
            assert await migrations.current_revision(services.engine) == migrations.head_revision()

        _run(client, migrate_again)
        assert await _live(client, party.id) == 2  # sign-up's and the one not revoked
        assert await _live(client, quiet.id) == 1
        assert await _live(client, app.operator.id) == 1
        for _ in range(2):
            assert (await client.post("/v1/accounts/me/tokens", json={}, headers=party.auth)).status_code == 201
        assert_problem(await client.post("/v1/accounts/me/tokens", json={}, headers=party.auth), 409, "too-many-tokens")
