"""Account input handling over HTTP: malformed sign-ups, keys and tokens are 422 problems,
and a refused request changes nothing (no account, key, token or ledger entry appears).

The happy paths are in ``test_accounts.py``.
"""

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import Parties, Party, assert_problem, random_uscc, walk_ids

VALIDATION = "validation-error"

NOT_JSON = [
    pytest.param(b"{not json", id="not JSON"),
    pytest.param(b"\xff\xfe{}", id="not UTF-8"),
    pytest.param(b'{"public_key": "x"} trailing', id="trailing garbage"),
    pytest.param(b'{"public_key": ', id="truncated"),
    pytest.param(b"[", id="truncated array"),
]


def public_key_b64() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


async def tokens_of(client: Any, party: Party) -> dict[str, Any]:
    """The party's tokens, without ``last_used_at``: reading them uses the token, and the
    market writes that time after the answer (at most once a minute), whenever it gets to it."""
    r = await client.get("/v1/accounts/me/tokens", headers=party.auth)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    page = r.json()
    for item in page["items"]:
        item.pop("last_used_at")
    return page


async def keys_of(client: Any, party: Party) -> dict[str, Any]:
    r = await client.get("/v1/accounts/me/keys", headers=party.auth)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return r.json()


async def ledger_of(client: Any, account_id: str) -> list[tuple[str, str]]:
    """(type, leaf hash) of every ledger entry about the account, pending ones included
    (an entry's ``index`` fills in when it is integrated, so it is left out)."""
    r = await client.get("/v1/ledger/entries", params={"subject": f"account:{account_id}"})
    assert r.status_code == 200, r.text
    return [(i["entry"]["type"], i["leaf_hash"]) for i in r.json()["items"]]


async def all_account_ids(client: Any, operator: Party) -> list[str]:
    return await walk_ids(client, "/v1/accounts", operator.auth)


# -- POST /v1/accounts/me/tokens ---------------------------------------------------------


BAD_TOKENS: dict[str, Any] = {
    "label over 100": {"label": "l" * 101},
    "Chinese label over 100": {"label": "标" * 101},
    "label a number": {"label": 42},
    "label a list": {"label": ["ci"]},
    "label an object": {"label": {"name": "ci"}},
    "unknown field": {"label": "ci", "scope": "admin"},
    "expiry smuggled in": {"expires_at": "2999-01-01T00:00:00Z"},
    "a JSON array": [{"label": "ci"}],
    "a JSON string": "ci",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_token_with_a_bad_body(client, parties: Parties, case: str) -> None:
    party = await parties.sign_up(["buyer"])
    before = await tokens_of(client, party)
    assert len(before["items"]) == 1  # the sign-up token
    ledger = await ledger_of(client, party.id)

    r = await client.post("/v1/accounts/me/tokens", json=BAD_TOKENS[case], headers=party.auth)
    assert_problem(r, 422, VALIDATION)
    assert await tokens_of(client, party) == before
    assert await ledger_of(client, party.id) == ledger


@pytest.mark.parametrize("content", NOT_JSON)
async def test_token_with_a_body_that_is_not_json(client, parties: Parties, content: bytes) -> None:
    party = await parties.sign_up(["buyer"])
    before = await tokens_of(client, party)
    r = await client.post("/v1/accounts/me/tokens", content=content,
                          headers={**party.auth, "content-type": "application/json"})
    assert_problem(r, 422, VALIDATION)
    assert await tokens_of(client, party) == before


async def test_token_label_at_the_limit_is_accepted(client, parties: Parties) -> None:
    party = await parties.sign_up(["buyer"])
    r = await client.post("/v1/accounts/me/tokens", json={"label": "标" * 100}, headers=party.auth)
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "标" * 100
    labels = [t["label"] for t in (await tokens_of(client, party))["items"]]
    assert labels == ["sign-up", "标" * 100]


async def test_token_anonymous_is_401(client) -> None:
    assert_problem(await client.post("/v1/accounts/me/tokens", json={"label": "ci"}), 401, "missing-token")
    assert_problem(await client.get("/v1/accounts/me/tokens"), 401, "missing-token")


# -- POST /v1/accounts/me/keys --------------------------------------------------------------


BAD_KEYS: dict[str, Any] = {
    "public_key a number": {"public_key": 12345},
    "public_key a list": {"public_key": [public_key_b64()]},
    "public_key null": {"public_key": None},
    "missing public_key": {},
    "unknown field": {"public_key": public_key_b64(), "alg": "Ed25519"},
    "not base64": {"public_key": "this is not base64 !!"},
    "hex, not base64": {"public_key": "ab" * 32},
    "31 bytes": {"public_key": base64.b64encode(b"\x02" * 31).decode()},
    "33 bytes": {"public_key": base64.b64encode(b"\x02" * 33).decode()},
    "empty": {"public_key": ""},
    "a JSON array": [{"public_key": public_key_b64()}],
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
async def test_key_with_a_bad_body(client, parties: Parties, case: str) -> None:
    party = await parties.sign_up(["provider"])
    existing = await client.post("/v1/accounts/me/keys", json={"public_key": public_key_b64()}, headers=party.auth)
    assert existing.status_code == 201, existing.text
    before = await keys_of(client, party)
    ledger = await ledger_of(client, party.id)
    assert [t for t, _ in ledger] == ["account.created", "account.key_added"]

    r = await client.post("/v1/accounts/me/keys", json=BAD_KEYS[case], headers=party.auth)
    assert_problem(r, 422, VALIDATION)
    assert await keys_of(client, party) == before
    assert await ledger_of(client, party.id) == ledger


@pytest.mark.parametrize("content", NOT_JSON)
async def test_key_with_a_body_that_is_not_json(client, parties: Parties, content: bytes) -> None:
    party = await parties.sign_up(["provider"])
    ledger = await ledger_of(client, party.id)
    r = await client.post("/v1/accounts/me/keys", content=content,
                          headers={**party.auth, "content-type": "application/json"})
    assert_problem(r, 422, VALIDATION)
    assert await keys_of(client, party) == {"items": [], "next_cursor": None}
    assert await ledger_of(client, party.id) == ledger


async def test_key_anonymous_is_401(client) -> None:
    assert_problem(await client.post("/v1/accounts/me/keys", json={"public_key": public_key_b64()}), 401,
                   "missing-token")


# -- POST /v1/accounts -------------------------------------------------------------------------


def _sign_up(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Input Test Co", "kind": "enterprise", "roles": ["provider"], "uscc": random_uscc()}
    body.update(changes)
    return body


BAD_SIGN_UPS: dict[str, Any] = {
    "roles a string": _sign_up(roles="provider"),
    "roles a comma list": _sign_up(roles="provider,buyer"),
    "roles an object": _sign_up(roles={"provider": True}),
    "roles with a number": _sign_up(roles=["provider", 1]),
    "roles over 4": _sign_up(roles=["provider", "buyer", "provider", "buyer", "provider"]),
    "kind unknown": _sign_up(kind="company"),
    "kind in upper case": _sign_up(kind="ENTERPRISE"),
    "kind a number": _sign_up(kind=1),
    "name a number": _sign_up(name=7),
    "blank name": _sign_up(name="   "),
    "uscc a number": _sign_up(uscc=913501001234567890),
    "unknown field": _sign_up(status="verified"),
    "smuggled id": _sign_up(id="acct_chosenbyme"),
    "a JSON array": [_sign_up()],
}


@pytest.mark.parametrize("case", list(BAD_SIGN_UPS))
async def test_sign_up_with_a_bad_body(client, operator, case: str) -> None:
    before = await all_account_ids(client, operator)
    for headers in ({}, operator.auth):  # anonymous, and the operator (who may create any account)
        r = await client.post("/v1/accounts", json=BAD_SIGN_UPS[case], headers=headers)
        assert_problem(r, 422, VALIDATION)
    assert await all_account_ids(client, operator) == before


@pytest.mark.parametrize("content", [pytest.param(b"", id="empty"), pytest.param(b"name=A&kind=enterprise", id="form"),
                                     *NOT_JSON])
async def test_sign_up_with_a_body_that_is_not_json(client, operator, content: bytes) -> None:
    before = await all_account_ids(client, operator)
    r = await client.post("/v1/accounts", content=content, headers={"content-type": "application/json"})
    assert_problem(r, 422, VALIDATION)
    assert await all_account_ids(client, operator) == before


async def test_a_good_sign_up_is_counted(client, operator) -> None:
    """The count the refusals above rely on does move when an account is made."""
    before = await all_account_ids(client, operator)
    r = await client.post("/v1/accounts", json=_sign_up())
    assert r.status_code == 201, r.text
    after = await all_account_ids(client, operator)
    assert after == before + [r.json()["account"]["id"]]


# -- /v1/accounts/me/... is the caller's own, even for an operator ----------------------------------


async def test_operator_cannot_revoke_another_accounts_key_or_token(client, parties: Parties, operator) -> None:
    party = await parties.sign_up(["provider"])
    r = await client.post("/v1/accounts/me/keys", json={"public_key": public_key_b64()}, headers=party.auth)
    assert r.status_code == 201, r.text
    key = r.json()
    r = await client.post("/v1/accounts/me/tokens", json={"label": "ci"}, headers=party.auth)
    assert r.status_code == 201, r.text
    token = r.json()
    keys, tokens = await keys_of(client, party), await tokens_of(client, party)
    ledger = await ledger_of(client, party.id)
    operator_ledger = await ledger_of(client, operator.id)

    assert_problem(await client.delete(f"/v1/accounts/me/keys/{key['id']}", headers=operator.auth), 404, "not-found")
    assert_problem(await client.delete(f"/v1/accounts/me/tokens/{token['id']}", headers=operator.auth),
                   404, "not-found")
    # Nor is it theirs to see in their own lists.
    assert key["id"] not in [k["id"] for k in (await keys_of(client, operator))["items"]]
    assert token["id"] not in [t["id"] for t in (await tokens_of(client, operator))["items"]]

    assert await keys_of(client, party) == keys and keys["items"][0]["revoked_at"] is None
    assert await tokens_of(client, party) == tokens
    assert (await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token['token']}"})).status_code == 200
    assert await ledger_of(client, party.id) == ledger
    assert await ledger_of(client, operator.id) == operator_ledger

    # The owner can.
    assert (await client.delete(f"/v1/accounts/me/keys/{key['id']}", headers=party.auth)).status_code == 204
    assert (await client.delete(f"/v1/accounts/me/tokens/{token['id']}", headers=party.auth)).status_code == 204


@pytest.mark.parametrize("bad", ["key_" + "a" * 296, "key_数据", "tok_doesnotexist", "acct_x"],
                         ids=["300 characters", "non-ASCII", "unknown", "wrong prefix"])
async def test_revoking_a_malformed_key_or_token_id_is_404(client, parties: Parties, bad: str) -> None:
    party = await parties.sign_up(["provider"])
    for kind in ("keys", "tokens"):
        r = await client.delete(f"/v1/accounts/me/{kind}/{bad}", headers=party.auth)
        assert_problem(r, 404, "not-found")
    assert len((await tokens_of(client, party))["items"]) == 1


# -- public keys of small order ----------------------------------------------------------------

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P


def _decode(encoding: bytes) -> tuple[int, int] | None:
    """RFC 8032 §5.1.3 point decoding (without the canonical-y check), as affine (x, y)."""
    y = int.from_bytes(encoding, "little") & ((1 << 255) - 1)
    sign = encoding[31] >> 7
    y %= P
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    if (v * x * x - u) % P != 0:
        x = x * pow(2, (P - 1) // 4, P) % P
        if (v * x * x - u) % P != 0:
            return None
    if x == 0 and sign:
        return (0, y) if y in (1, P - 1) else None
    if x & 1 != sign:
        x = P - x
    return x, y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def _times8_is_identity(point: tuple[int, int]) -> bool:
    for _ in range(3):
        point = _add(point, point)
    return point == (0, 1)


SMALL_ORDER_POINTS = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity (order 1)
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # identity, non-canonical y = p + 1
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 4, non-canonical y = p
]


def test_the_list_is_of_small_order_points() -> None:
    """The test's own list, checked by arithmetic: 8·P is the identity for each."""
    for encoding in SMALL_ORDER_POINTS:
        point = _decode(bytes.fromhex(encoding))
        assert point is not None and _times8_is_identity(point), encoding
    ordinary = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    point = _decode(ordinary)
    assert point is not None and not _times8_is_identity(point)


@pytest.mark.parametrize("encoding", SMALL_ORDER_POINTS)
async def test_a_public_key_of_small_order_is_refused(client, parties: Parties, encoding: str) -> None:
    party = await parties.sign_up()
    key = base64.b64encode(bytes.fromhex(encoding)).decode()
    body = assert_problem(await client.post("/v1/accounts/me/keys", json={"public_key": key}, headers=party.auth),
                          422, "validation-error")
    assert "small order" in body["detail"]
    r = await client.get("/v1/accounts/me/keys", headers=party.auth)
    assert r.json()["items"] == []


async def test_a_declared_controller(client, parties: Parties) -> None:
    """``controller_uscc`` is kept as declared (a well-formed code, not the account's own)."""
    from tests.conftest import random_uscc

    controller = random_uscc()
    party = await parties.sign_up(["buyer"], controller_uscc=controller)
    assert party.body["controller_uscc"] == controller
    r = await client.get("/v1/accounts/me", headers=party.auth)
    assert r.json()["controller_uscc"] == controller
    own = random_uscc()
    for bad in ("91350100M000100Y44", own):
        body = {"name": "Related Co", "kind": "enterprise", "roles": ["buyer"], "uscc": own, "controller_uscc": bad}
        assert_problem(await client.post("/v1/accounts", json=body), 422)
