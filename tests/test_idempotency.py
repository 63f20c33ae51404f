"""Idempotency-Key on creating POSTs: replay, reuse with another body, scoping, atomicity."""

import uuid

from sqlmodel import func, select

from market.accounts.models import Account
from market.core import db
from tests.conftest import Parties, assert_problem, random_uscc


async def count_accounts(settings) -> int:
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            return (await session.exec(select(func.count()).select_from(Account))).one()
    finally:
        await engine.dispose()


async def test_sign_up_replay_returns_first_response_with_token(client, settings) -> None:
    key = str(uuid.uuid4())
    body = {"name": "Replay Co", "kind": "enterprise", "roles": ["provider"], "uscc": random_uscc()}
    first = await client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    before = await count_accounts(settings)
    again = await client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.json() == first.json()  # the token included
    assert again.headers.get("idempotent-replayed") == "true"
    assert await count_accounts(settings) == before
    me = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {again.json()['token']}"})
    assert me.status_code == 200


async def test_same_key_other_body_is_409_and_creates_nothing(client, settings) -> None:
    key = str(uuid.uuid4())
    body = {"name": "Reuse Co", "kind": "enterprise", "roles": ["provider"], "uscc": random_uscc()}
    assert (await client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})).status_code == 201
    before = await count_accounts(settings)
    other = {**body, "uscc": random_uscc()}
    assert_problem(await client.post("/v1/accounts", json=other, headers={"Idempotency-Key": key}), 409,
                   "idempotency-key-reused")
    assert await count_accounts(settings) == before


async def test_failed_request_is_not_remembered(client) -> None:
    key = str(uuid.uuid4())
    code = random_uscc()
    taken = {"name": "Taken", "kind": "enterprise", "roles": ["provider"], "uscc": code}
    assert (await client.post("/v1/accounts", json=taken)).status_code == 201
    # A 409 (duplicate) is not stored: the same key with a new body then works.
    assert_problem(await client.post("/v1/accounts", json=taken, headers={"Idempotency-Key": key}), 409, "duplicate-account")
    fresh = {**taken, "uscc": random_uscc()}
    assert (await client.post("/v1/accounts", json=fresh, headers={"Idempotency-Key": key})).status_code == 201


async def test_keys_are_scoped_per_account(client, parties: Parties) -> None:
    a = await parties.sign_up(["buyer"])
    b = await parties.sign_up(["buyer"])
    key = str(uuid.uuid4())
    ra = await client.post("/v1/accounts/me/tokens", json={"label": "x"}, headers={**a.auth, "Idempotency-Key": key})
    rb = await client.post("/v1/accounts/me/tokens", json={"label": "x"}, headers={**b.auth, "Idempotency-Key": key})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]
    again = await client.post("/v1/accounts/me/tokens", json={"label": "x"}, headers={**a.auth, "Idempotency-Key": key})
    assert again.json() == ra.json()
    assert len((await client.get("/v1/accounts/me/tokens", headers=a.auth)).json()["items"]) == 2


async def test_key_creation_replay(client, parties: Parties) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    party = await parties.sign_up(["provider"])
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = {"public_key": base64.b64encode(raw).decode()}
    key = str(uuid.uuid4())
    first = await client.post("/v1/accounts/me/keys", json=body, headers={**party.auth, "Idempotency-Key": key})
    again = await client.post("/v1/accounts/me/keys", json=body, headers={**party.auth, "Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len((await client.get("/v1/accounts/me/keys", headers=party.auth)).json()["items"]) == 1


async def test_bad_idempotency_key(client) -> None:
    body = {"name": "K", "kind": "individual", "roles": ["buyer"]}
    assert_problem(await client.post("/v1/accounts", json=body, headers={"Idempotency-Key": "x" * 300}), 422,
                   "bad-idempotency-key")
