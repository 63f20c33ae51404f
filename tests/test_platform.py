"""Health, readiness, metrics, OpenAPI, request ids."""

from tests.conftest import assert_problem


async def test_health(client) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_ready(client) -> None:
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


async def test_ready_is_503_when_migrations_are_behind(databases, tmp_path) -> None:
    from litestar.testing import AsyncTestClient

    from market import db
    from market.app import create_app
    from tests.conftest import make_settings

    url = await databases.new()
    engine = db.make_engine(url)
    try:
        async with engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    finally:
        await engine.dispose()
    app = create_app(make_settings(tmp_path, url, background_tasks=False))
    async with AsyncTestClient(app=app) as c:
        assert_problem(await c.get("/ready"), 503, "not-ready")
        assert (await c.get("/health")).status_code == 200


async def test_metrics(client) -> None:
    await client.get("/health")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "market_http_requests_total" in r.text


async def test_openapi(client) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/v1/accounts", "/v1/accounts/me", "/v1/accounts/me/keys", "/v1/ledger/checkpoint"):
        assert path in paths, sorted(paths)
    assert (await client.get("/schema")).status_code == 200


async def test_request_id(client) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) == 16


async def test_suite_runs_on_the_backend_it_claims(settings) -> None:
    """Evidence that MARKET_TEST_DATABASE_URL really switches the database under test."""
    from tests.conftest import backend

    assert settings.sqlalchemy_url.startswith("postgresql+asyncpg" if backend() == "postgresql" else "sqlite+aiosqlite")
