"""The 401 / 403 / 404 rules on every protected route, and problem+json everywhere."""

import pytest

from tests.conftest import Parties, assert_problem

# (method, path template, body) for every route that needs a token.
PROTECTED = [
    ("GET", "/v1/accounts/me", None),
    ("GET", "/v1/accounts", None),
    ("GET", "/v1/accounts/{account}", None),
    ("POST", "/v1/accounts/{account}/verification", {"decision": "approve"}),
    ("POST", "/v1/accounts/me/keys", {"public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
    ("GET", "/v1/accounts/me/keys", None),
    ("DELETE", "/v1/accounts/me/keys/{key}", None),
    ("POST", "/v1/accounts/me/tokens", {}),
    ("GET", "/v1/accounts/me/tokens", None),
    ("DELETE", "/v1/accounts/me/tokens/{token}", None),
]


@pytest.fixture
async def ids(client, parties: Parties) -> dict[str, str]:
    owner = await parties.sign_up(["provider"])
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = (await client.post("/v1/accounts/me/keys", json={"public_key": base64.b64encode(raw).decode()}, headers=owner.auth)).json()
    token = (await client.post("/v1/accounts/me/tokens", json={}, headers=owner.auth)).json()
    return {"account": owner.id, "key": key["id"], "token": token["id"], "owner_token": owner.token}


def fill(path: str, ids: dict[str, str]) -> str:
    return path.format(**ids)


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
async def test_missing_token_is_401(client, ids, method, path, body) -> None:
    r = await client.request(method, fill(path, ids), json=body)
    assert_problem(r, 401, "missing-token")


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("header", ["Bearer mkt_unknown", "Basic abc", "Bearer ", "mkt_x"])
async def test_bad_token_is_401(client, ids, method, path, body, header) -> None:
    r = await client.request(method, fill(path, ids), json=body, headers={"Authorization": header})
    assert_problem(r, 401)


# Routes for one role: anyone else with a valid token gets 403.
ROLE_ONLY = [
    ("GET", "/v1/accounts", None),
    ("POST", "/v1/accounts/{account}/verification", {"decision": "approve"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROLE_ONLY)
async def test_wrong_role_is_403(client, ids, parties: Parties, method, path, body) -> None:
    for roles in (["buyer"], ["provider"], ["buyer", "provider"]):
        party = await parties.verified(roles)
        r = await client.request(method, fill(path, ids), json=body, headers=party.auth)
        assert_problem(r, 403, "wrong-role")


# Routes that take an id: another party gets 404 and the object is unchanged.
async def test_other_partys_objects_are_404(client, ids, parties: Parties) -> None:
    stranger = await parties.verified(["buyer", "provider"])
    owner_auth = {"Authorization": f"Bearer {ids['owner_token']}"}
    assert_problem(await client.get(f"/v1/accounts/{ids['account']}", headers=stranger.auth), 404)
    assert_problem(await client.delete(f"/v1/accounts/me/keys/{ids['key']}", headers=stranger.auth), 404)
    assert_problem(await client.delete(f"/v1/accounts/me/tokens/{ids['token']}", headers=stranger.auth), 404)
    keys = (await client.get("/v1/accounts/me/keys", headers=owner_auth)).json()["items"]
    tokens = (await client.get("/v1/accounts/me/tokens", headers=owner_auth)).json()["items"]
    assert all(k["revoked_at"] is None for k in keys)
    assert all(t["revoked_at"] is None for t in tokens)


async def test_unknown_route_and_method_are_problems(client) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404)
    assert_problem(await client.put("/v1/accounts/me"), 405)


async def test_oversized_body_is_413(client) -> None:
    r = await client.post("/v1/accounts", content=b"{" + b" " * 2_000_000 + b"}", headers={"content-type": "application/json"})
    assert_problem(r, 413)
