"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when
``MARKET_TEST_DATABASE_URL`` is set), the app, an HTTP client, and parties.

Each test session gets its own database: a SQLite file in a temporary directory, or a
new PostgreSQL database created next to the one the URL names (and dropped after).
"""

import os
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from market.accounts import uscc
from market.core import db, migrations
from market.core.config import Settings, async_database_url
from market.web.app import create_app
from market.wiring.bootstrap import create_staff_account
from tests.regulator_acts import Authority, authority, enroll_regulator

# The localstripe fixture (a fake Stripe server) and moto_server (an S3 API), each one per session, for any module.
pytest_plugins = ["tests.payments.localstripe_server", "tests.storage.moto_s3"]

PG_URL = os.environ.get("MARKET_TEST_DATABASE_URL")


def backend() -> str:
    return "postgresql" if PG_URL else "sqlite"


async def _admin(sql: str) -> None:
    import asyncpg

    url = make_url(async_database_url(PG_URL or ""))
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username, password=url.password,
        database=url.database or "postgres",
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class FreshDatabase:
    """Makes migrated, empty databases for the backend under test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: list[str] = []
        self._template: str | None = None  # a database migrated once, copied for every migrated one

    def _url(self, name: str) -> str:
        if PG_URL:
            return make_url(async_database_url(PG_URL)).set(database=name).render_as_string(hide_password=False)
        return f"sqlite+aiosqlite:///{(self.tmp / f'{name}.db').as_posix()}"

    async def _empty(self, name: str, template: str | None = None) -> str:
        if PG_URL:
            await _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
            self.created.append(name)
        elif template:
            for tail in (".db", ".db-wal"):  # the WAL too, should one have been left behind
                if (self.tmp / f"{template}{tail}").exists():
                    shutil.copyfile(self.tmp / f"{template}{tail}", self.tmp / f"{name}{tail}")
                    os.chmod(self.tmp / f"{name}{tail}", 0o600)  # as the market makes its own
        return self._url(name)

    async def new(self, *, migrate: bool = True) -> str:
        """A new database; migrated (the default) means a copy of one migrated at the first
        call (the migrations run once per test process, not once per database)."""
        name = f"market_test_{uuid.uuid4().hex[:12]}"
        if not migrate:
            return await self._empty(name)
        if self._template is None:
            template = f"market_template_{uuid.uuid4().hex[:12]}"
            engine = db.make_engine(await self._empty(template))
            try:
                await migrations.upgrade(engine)
            finally:
                await engine.dispose()  # the last connection closed: SQLite's WAL is folded back in
            self._template = template
        return await self._empty(name, self._template)

    async def drop_all(self) -> None:
        for name in self.created:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FreshDatabase]:
    fresh = FreshDatabase(tmp_path_factory.mktemp("db"))
    yield fresh
    await fresh.drop_all()


def make_settings(data_dir: Path, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": url,
        "log_level": "WARNING",
        "ledger_origin": "ledger.test.example/log",
        "ledger_integrate_interval": 0.05,
        "notice_period": "0",
        # Tests send many requests from one address; tests of the limits set their own.
        "rate_limit_per_minute": 1_000_000,
        "rate_limit_signups_per_hour": 1_000_000,
        # Regulators are enrolled by this process's test authority (tests.regulator_acts).
        "regulator_authority": authority().vkey,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def settings(databases: FreshDatabase, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"), await databases.new())


@pytest.fixture(scope="session")
async def app(settings: Settings) -> Any:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=app) as c:
        yield c


def random_uscc() -> str:
    body = "91" + "".join(secrets.choice(uscc.ALPHABET) for _ in range(15))
    return body + uscc.check_character(body)


@dataclass
class Party:
    id: str
    token: str
    body: dict[str, Any]
    key: Any = None  # a regulator's enrolled Ed25519 private key
    key_id: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Parties:
    """Makes accounts over HTTP, the way a client would."""

    def __init__(self, client: AsyncTestClient, settings: Settings, operator: Party) -> None:
        self.client = client
        self.settings = settings
        self.operator = operator

    async def sign_up(self, roles: list[str] | None = None, kind: str = "enterprise", **extra: Any) -> Party:
        body: dict[str, Any] = {"name": f"Party {secrets.token_hex(3)}", "kind": kind, "roles": roles or ["provider"]}
        if kind != "individual":
            body["uscc"] = random_uscc()
        body.update(extra)
        r = await self.client.post("/v1/accounts", json=body)
        assert r.status_code == 201, r.text
        data = r.json()
        return Party(data["account"]["id"], data["token"], data["account"])

    async def verified(self, roles: list[str] | None = None, **extra: Any) -> Party:
        party = await self.sign_up(roles, **extra)
        r = await self.client.post(
            f"/v1/accounts/{party.id}/verification", json={"decision": "approve", "reason": "documents checked"},
            headers=self.operator.auth,
        )
        assert r.status_code == 200, r.text
        party.body = r.json()
        return party

    async def staff(self, role: str) -> Party:
        """An operator made by an operator, or a regulator enrolled by the test authority."""
        if role == "regulator":
            return await self.regulator()
        r = await self.client.post(
            "/v1/accounts", json={"name": f"{role} {secrets.token_hex(3)}", "kind": "institution", "roles": [role]},
            headers=self.operator.auth,
        )
        assert r.status_code == 201, r.text
        data = r.json()
        return Party(data["account"]["id"], data["token"], data["account"])


    async def regulator(self, name: str | None = None) -> Party:
        """A regulator enrolled through the real path, with its signing key."""
        return await enroll_regulator(self.client, self.settings, name)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def regulator_authority() -> Authority:
    """The regulator authority's key (file and vkey) every test market trusts."""
    return authority()


@pytest.fixture(scope="session")
async def operator(client: AsyncTestClient, settings: Settings) -> Party:
    token = await create_staff_account(settings, "Exchange operator", "operator")
    r = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return Party(r.json()["id"], token, r.json())


@pytest.fixture(scope="session")
async def parties(client: AsyncTestClient, settings: Settings, operator: Party) -> Parties:
    return Parties(client, settings, operator)


@pytest.fixture(scope="session")
async def regulator(parties: Parties) -> Party:
    """A regulator enrolled by the test authority; ``regulator.key`` signs its acts."""
    return await parties.regulator("Regulator")


PROBLEM_JSON = "application/problem+json"


def assert_problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem of ``status`` (and problem type ``kind``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def wait_until_serving(url: str, proc: Any, seconds: float = 60.0) -> None:
    """Wait (bounded) until a server process answers 200 at ``url``; fail if it exits."""
    import subprocess
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr not in (None, subprocess.DEVNULL) else ""
            raise AssertionError(f"the server exited ({proc.returncode}): {err}")
        assert time.monotonic() < deadline, f"the server did not answer {url} within {seconds:.0f} s"
        time.sleep(0.2)


async def walk_ids(client: AsyncTestClient, path: str, headers: dict[str, str], **params: Any) -> list[str]:
    """Every id a list route shows these credentials, walking all its pages."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(path, params=query, headers=headers)
        assert r.status_code == 200, r.text
        ids += [item["id"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids
