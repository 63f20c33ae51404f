"""Health, readiness, metrics, OpenAPI, request ids."""

import re
from typing import Any

import pytest

from tests.conftest import assert_problem, random_uscc


async def test_health(client) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_ready(client) -> None:
    r = await client.get("/ready")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


async def test_ready_is_503_when_migrations_are_behind(databases, tmp_path) -> None:
    from litestar.testing import AsyncTestClient

    from market.core import db
    from market.web.app import create_app
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


async def test_metrics(client, operator) -> None:
    await client.get("/health")
    r = await client.get("/metrics", headers=operator.auth)
    assert r.status_code == 200
    assert "market_http_requests_total" in r.text
    content_type = r.headers["content-type"]
    assert content_type.startswith("text/plain; version=") and content_type.count("charset=") == 1, content_type


async def test_metrics_need_a_staff_token(client, parties, operator, regulator) -> None:
    assert_problem(await client.get("/metrics"), 401, "missing-token")
    assert_problem(await client.get("/metrics", headers={"Authorization": "Bearer mkt_nobody"}), 401, "bad-token")
    buyer = await parties.sign_up(["buyer"])
    assert_problem(await client.get("/metrics", headers=buyer.auth), 403, "wrong-role")
    for staff in (operator, regulator):
        r = await client.get("/metrics", headers=staff.auth)
        assert r.status_code == 200 and "market_http_requests_total" in r.text


async def test_metrics_for_the_addresses_in_metrics_allow(databases, tmp_path) -> None:
    import httpx

    from tests.registry_support import own_app

    # No background work: the requests below run on this test's event loop, not the app's,
    # and a background loop of the app stopped waiting on them at shutdown (seen once the
    # notification loops joined, in a worker that had run other files first).
    async with own_app(databases, tmp_path, background_tasks=False,
                       metrics_allow="10.1.0.0/16, 192.0.2.7 2001:db8::/32") as app:
        asgi = app.client.app  # started (lifespan) by the test client; called here with chosen client addresses,
        # without a token (so without the database)

        async def get(address: str, **headers: str) -> Any:
            transport = httpx.ASGITransport(app=asgi, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://market") as c:
                return await c.get("/metrics", headers=headers)

        for address in ("10.1.200.3", "192.0.2.7", "2001:db8::5", "::ffff:10.1.0.1"):
            r = await get(address)
            assert r.status_code == 200 and "market_http_requests_total" in r.text, address
        for address in ("10.2.0.1", "192.0.2.8", "127.0.0.1", "2001:db9::1"):
            assert_problem(await get(address), 401, "missing-token")
        # (the app's database connections belong to the test client's event loop: a token is checked through it)
        assert (await app.client.get("/metrics", headers=app.operator.auth)).status_code == 200


async def test_openapi(client) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in ("/v1/accounts", "/v1/accounts/me", "/v1/accounts/me/keys", "/v1/ledger/checkpoint"):
        assert path in paths, sorted(paths)
    assert (await client.get("/schema")).status_code == 200


async def test_docs_pages_load_nothing_from_elsewhere(client) -> None:
    """/schema works offline: every script, style sheet and icon comes from the market itself."""
    import re

    want_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/"}
    for page in ("/schema", "/schema/swagger"):
        r = await client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", r.text)
        assert len(urls) >= 4, urls  # icon, style sheet, script, the OpenAPI document
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rfind("."):]
            assert asset.headers["content-type"].startswith(want_types[suffix]), (url, asset.headers["content-type"])
            assert len(asset.content) > 100


def test_docs_assets_are_package_data() -> None:
    """The vendored assets ship with the package (pyproject's package-data)."""
    import tomllib
    from fnmatch import fnmatch
    from pathlib import Path

    from market.web.openapi import ASSETS_DIR

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["market"]
    files = [f.relative_to(root / "market").as_posix() for f in ASSETS_DIR.iterdir()]
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"} <= {Path(f).name for f in files}
    for f in files:
        assert any(fnmatch(f, p) for p in patterns), f"{f} is not in package-data"


async def test_openapi_declares_raw_request_bodies(client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    put = doc["paths"]["/v1/assets/{asset_id}/content"]["put"]
    assert put["requestBody"]["required"] is True
    assert put["requestBody"]["content"] == {"application/octet-stream": {"schema": {
        "type": "string", "format": "binary", "minLength": 1}}}
    cosign = doc["paths"]["/v1/ledger/cosignatures"]["post"]
    assert list(cosign["requestBody"]["content"]) == ["text/plain"]


async def test_openapi_declares_idempotency_key_exactly_where_it_is_honoured(app, client) -> None:
    """The header is declared on an operation if and only if its handler runs through idempotency.run."""
    import inspect

    from litestar.routes import HTTPRoute

    doc = (await client.get("/schema/openapi.json")).json()
    honoured = set()
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if "idempotency.run(" in inspect.getsource(handler.fn):
                    honoured |= {(m.lower(), route.path_format) for m in handler.http_methods}
    declared = {(method, path) for path, item in doc["paths"].items() for method, op in item.items()
                if any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in op.get("parameters", []))}
    assert honoured and declared == honoured
    assert ("post", "/v1/accounts") in declared and ("post", "/v1/assets") in declared


async def test_openapi_says_who_may_call(client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert doc["paths"]["/v1/ledger/checkpoint"]["get"]["security"] == []
    assert doc["paths"]["/v1/assets/{asset_id}"]["get"]["security"] == [{}, {"bearer": []}]
    assert "security" not in doc["paths"]["/v1/accounts/me"]["get"]  # the document's default: a token
    assert doc["security"] == [{"bearer": []}]
    # Errors are documented as problem documents, and 422 (not Litestar's 400) for invalid input.
    claim = doc["paths"]["/v1/assets/{asset_id}/claim"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(claim) and "400" not in claim
    assert claim["422"]["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


async def test_request_id(client) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) == 16


async def test_suite_runs_on_the_backend_it_claims(settings) -> None:
    """Evidence that MARKET_TEST_DATABASE_URL really switches the database under test."""
    from tests.conftest import backend

    assert settings.sqlalchemy_url.startswith("postgresql+asyncpg" if backend() == "postgresql" else "sqlite+aiosqlite")


async def test_options_lists_every_method_of_the_path(client) -> None:
    r = await client.options("/v1/accounts")
    assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    r = await client.options("/v1/assets/ast_00000000000000000000000000")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS, PATCH"
    r = await client.request("TRACE", "/v1/accounts")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}


async def test_openapi_request_models_say_what_they_refuse(client) -> None:
    from market.web.openapi import MODEL_RULES, PROPERTY_RULES

    schemas = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    for name in ("AccountCreate", "AssetCreate", "AssetUpdate", "SignedSubmission", "ReviewDecision"):
        assert schemas[name]["additionalProperties"] is False, name
    assert schemas["AssetCreate"]["properties"]["title"]["pattern"] == "\\S"  # stripped, so blank is empty
    # Every rule names a property the models have: a renamed field must not leave a rule behind.
    for component, prop in PROPERTY_RULES:
        assert prop in schemas[component]["properties"], (component, prop)
    assert set(MODEL_RULES) <= set(schemas)
    update = schemas["AssetUpdate"]
    assert update["minProperties"] == 1
    assert update["properties"]["grade"] == {"type": "string", "enum": ["general", "important", "core"]}
    assert update["properties"]["tags"]["oneOf"][0]["maxItems"] == 20 and "maxLength" not in update["properties"]["tags"]


async def test_openapi_rules_agree_with_the_server(client, parties) -> None:
    """Each rule added to the document describes a refusal the server really makes."""
    import base64
    import re

    from market.web.openapi import PROPERTY_RULES

    key_pattern = PROPERTY_RULES[("KeyCreate", "public_key")]["pattern"]
    provider = await parties.verified(["provider"])
    for value in ("", "AAAA", base64.b64encode(bytes(31)).decode(), base64.b64encode(bytes(33)).decode()):
        assert not re.search(key_pattern, value)
        r = await client.post("/v1/accounts/me/keys", json={"public_key": value}, headers=provider.auth)
        assert r.status_code == 422, value
    person = {"name": "A Person", "kind": "individual", "roles": ["buyer"]}
    assert (await client.post("/v1/accounts", json={**person, "uscc": random_uscc()})).status_code == 422
    assert (await client.post("/v1/accounts", json={**person, "uscc": None})).status_code == 201
    company = {"name": "A Company", "kind": "enterprise", "roles": ["buyer"]}
    assert (await client.post("/v1/accounts", json=company)).status_code == 422
    draft = await client.post("/v1/assets", headers=provider.auth, json={
        "title": "t", "category": "other", "grade": "general", "personal_info": "none"})
    assert draft.status_code == 201
    url = f"/v1/assets/{draft.json()['id']}"
    for body in ({}, {"format": None}, {"tags": [" "]}, {"title": "  "}, {"extra": 1}):
        assert (await client.patch(url, json=body, headers=provider.auth)).status_code == 422, body
    assert (await client.patch(url, json={"legal_basis": None}, headers=provider.auth)).status_code == 200
    r = await client.post(f"{url}/review", json={"decision": "reject"}, headers=parties.operator.auth)
    assert r.status_code == 422


# -- bounded input: no 500 from numbers or nesting a client chose ------------------------


def _integer_query_parameters(app: Any) -> list[tuple[str, str, str]]:
    """(method, path, name) of every integer query parameter of the API."""
    import inspect
    import typing

    from litestar.params import ParameterKwarg
    from litestar.routes import HTTPRoute

    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for name, param in inspect.signature(handler.fn).parameters.items():
                if name in route.path_parameters or name == "data":
                    continue
                hint = param.annotation
                args = typing.get_args(hint)
                inner = args[0] if typing.get_origin(hint) is typing.Annotated else hint
                if int in (typing.get_args(inner) or (inner,)) and not any(
                        isinstance(a, ParameterKwarg) and (a.header or a.cookie) for a in args):
                    method = sorted(handler.http_methods - {"HEAD", "OPTIONS"})[0]
                    found.append((method, route.path, name))
    return found


@pytest.mark.parametrize("value", ["99999999999999999999", "-99999999999999999999", "9" * 5000])
async def test_every_integer_query_parameter_is_bounded(app, client, operator, value) -> None:
    """Out of range is 422 naming the parameter, never an overflow (500) in the database."""
    params = _integer_query_parameters(app)
    assert {("GET", "/v1/listings", "max_price"), ("GET", "/v1/listings", "min_price"),
            ("GET", "/v1/orders/{order_id:str}/content", "revision")} <= set(params), params
    for method, path, name in params:
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        others = {other: "1" for m, p, other in params if (m, p) == (method, path)}  # valid, where required
        r = await client.request(method, concrete, params={**others, name: value}, headers=operator.auth)
        problem = assert_problem(r, 422)  # validation-error, or the route's own kind (bad-price)
        assert name in [e["field"] for e in problem["errors"]], (path, name, problem)


async def test_a_price_beyond_the_database_integers_is_422(client) -> None:
    for name in ("max_price", "min_price"):
        r = await client.get("/v1/listings", params={name: "99999999999999999999"})
        problem = assert_problem(r, 422, "bad-price")
        assert problem["errors"][0]["field"] == name
    assert (await client.get("/v1/listings", params={"max_price": str(10**15)})).status_code == 200


async def test_a_ledger_index_beyond_any_log_in_a_path_is_404(client) -> None:
    assert_problem(await client.get("/v1/ledger/entries/99999999999999999999"), 404)


@pytest.mark.parametrize("body", [b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                                  b"[" * 65 + b"]" * 65])
async def test_a_deeply_nested_json_body_is_422(client, operator, body) -> None:
    for path, headers in (("/v1/accounts", {}), ("/v1/accounts/me/tokens", operator.auth)):
        r = await client.post(path, content=body, headers={**headers, "content-type": "application/json"})
        problem = assert_problem(r, 422, "validation-error")
        assert problem["errors"] == [{"field": "body", "message": problem["errors"][0]["message"]}]
        assert "64" in problem["detail"]


def test_json_depth_counts_brackets_outside_strings_only() -> None:
    from market.web.requests import json_depth_exceeds

    assert not json_depth_exceeds(b'{"a": "' + b"[" * 1000 + b'"}')
    assert not json_depth_exceeds(b'{"a": "\\"' + b"[" * 1000 + b'"}')
    assert not json_depth_exceeds(b"[" * 64 + b"]" * 64)
    assert json_depth_exceeds(b"[" * 65 + b"]" * 65)
    assert not json_depth_exceeds(b"[[]]" * 1000)  # many brackets, shallow


def test_ids_are_typed_fixed_length_crockford_and_sort_by_time(monkeypatch) -> None:
    from market.core import ids

    made = []
    for millis in (0, 1, 1_700_000_000_000, 2**48 - 1):  # the 48-bit clock's ends and between
        monkeypatch.setattr(ids.time, "time", lambda m=millis: m / 1000)
        made.append(ids.new_id("tok"))
    assert all(re.fullmatch(r"tok_[0-9a-hjkmnp-tv-z]{26}", i) for i in made), made
    assert made == sorted(made)
    assert made[0].startswith("tok_0000000000")  # 48 bits of a zero clock: 10 characters (50 bits) of 0
    # the characters are the value's 5-bit groups, most significant first
    monkeypatch.setattr(ids.secrets, "randbits", lambda _bits: 2**80 - 1)
    monkeypatch.setattr(ids.time, "time", lambda: 0.001)
    assert ids.new_id("ord") == "ord_" + "0" * 9 + "1" + "z" * 16
    with pytest.raises(ValueError, match="unknown id prefix"):
        ids.new_id("nope")
