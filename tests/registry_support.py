"""Helpers for registry tests: a provider with a signing key, and the claim round trip."""

import base64
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from market.accounts.models import Account
from market.core.context import Ctx
from market.core.types import utcnow
from market.web.auth import Caller
from tests.conftest import Parties, Party

ASSET = {
    "title": "深圳公交刷卡数据 2026Q3",
    "description": "Anonymised tap-in/tap-out records of Shenzhen buses.",
    "category": "transport",
    "tags": ["bus", "交通"],
    "grade": "general",
    "personal_info": "anonymized",
    "export_allowed": False,
    "source": "collected by our own ticketing system",
    "format": "csv",
}


@dataclass
class Signer:
    party: Party
    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def sign(self, signing_bytes_b64: str) -> str:
        return base64.b64encode(self.private_key.sign(base64.b64decode(signing_bytes_b64))).decode()

    @property
    def auth(self) -> dict[str, str]:
        return self.party.auth

    @property
    def id(self) -> str:
        return self.party.id


async def add_key(client: Any, party: Party) -> Signer:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    r = await client.post("/v1/accounts/me/keys", json={"public_key": base64.b64encode(raw).decode()}, headers=party.auth)
    assert r.status_code == 201, r.text
    return Signer(party, r.json()["id"], key)


async def provider(client: Any, parties: Parties) -> Signer:
    return await add_key(client, await parties.verified(["provider"]))


async def draft(client: Any, signer: Signer, **changes: Any) -> dict[str, Any]:
    r = await client.post("/v1/assets", json={**ASSET, **changes}, headers=signer.auth)
    assert r.status_code == 201, r.text
    return r.json()


async def upload(client: Any, signer: Signer, asset_id: str, content: bytes) -> dict[str, Any]:
    r = await client.put(f"/v1/assets/{asset_id}/content", content=content, headers=signer.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def submit(client: Any, signer: Signer, asset_id: str, rights: str | None = None) -> dict[str, Any]:
    params = {"rights": rights} if rights else None
    r = await client.get(f"/v1/assets/{asset_id}/claim", params=params, headers=signer.auth)
    assert r.status_code == 200, r.text
    claim = r.json()
    r = await client.post(f"/v1/assets/{asset_id}/claim", headers=signer.auth, json={
        "signing_bytes": claim["signing_bytes"], "key_id": signer.key_id, "signature": signer.sign(claim["signing_bytes"]),
    })
    assert r.status_code == 200, r.text
    return r.json()


async def registered_asset(client: Any, signer: Signer, operator: Party, content: bytes | None = None) -> dict[str, Any]:
    """Draft → content → claim → approve; the test app's notice period is 0."""
    asset = await draft(client, signer)
    await upload(client, signer, asset["id"], content if content is not None else os.urandom(100_000))
    await submit(client, signer, asset["id"])
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "registered"
    return r.json()


async def with_content(client: Any, signer: Signer, content: bytes | None = None, **changes: Any) -> dict[str, Any]:
    asset = await draft(client, signer, **changes)
    await upload(client, signer, asset["id"], content if content is not None else os.urandom(256))
    return asset

async def submitted_asset(client: Any, signer: Signer, content: bytes | None = None, **changes: Any) -> dict[str, Any]:
    asset = await with_content(client, signer, content, **changes)
    return await submit(client, signer, asset["id"])

async def read_asset(client: Any, asset_id: str, viewer: Party | Signer | None = None) -> dict[str, Any]:
    r = await client.get(f"/v1/assets/{asset_id}", headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()

async def propose(client: Any, holder: Signer, asset_id: str, to: str) -> tuple[dict[str, Any], str]:
    r = await client.get(f"/v1/assets/{asset_id}/transfer-document", params={"to": to}, headers=holder.auth)
    assert r.status_code == 200, r.text
    signing_bytes = r.json()["signing_bytes"]
    r = await client.post(f"/v1/assets/{asset_id}/transfers", headers=holder.auth, json={
        "signing_bytes": signing_bytes, "key_id": holder.key_id, "signature": holder.sign(signing_bytes)})
    assert r.status_code == 201, r.text
    return r.json(), signing_bytes


async def concurrently(client: Any, *requests: tuple[str, str, dict[str, Any]]) -> list[Any]:
    """Send ``(method, path, httpx kwargs)`` requests at once, truly concurrently.

    The test client hands each request to the app's event loop and waits for it, one at
    a time; here the requests are started together inside that loop, straight through
    the ASGI interface, each on its own database session and connection."""
    import asyncio

    import httpx

    app = client.app

    async def run() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
            return list(await asyncio.gather(*(c.request(m, url, **kw) for m, url, kw in requests)))

    return client.blocking_portal.call(run)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- helpers for the rule tests --------------------------------------------------------


async def act(client: Any, settings: Any, who: Party, fn: Any, *args: Any) -> Any:
    """Run ``fn(session, ctx, *args)`` as ``who`` in the app's loop, and commit."""
    state = client.app.state.services

    async def run() -> Any:
        async with state.sessionmaker() as session:
            account = await session.get(Account, who.id)
            result = await fn(session, Ctx(Caller(account, "tok_test"), utcnow(), state), *args)
            await session.commit()
            return result

    return client.blocking_portal.call(run)


async def ledger_items(client: Any, asset_id: str, kind: str = "asset") -> list[dict[str, Any]]:
    """Every ledger entry about the asset (or ``kind:id``), pending ones included (all pages)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"subject": f"{kind}:{asset_id}", "limit": 500, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/ledger/entries", params=params)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items


async def entry_types(client: Any, asset_id: str) -> list[str]:
    return [i["entry"]["type"] for i in await ledger_items(client, asset_id)]


async def wait_integrated(client: Any, subject: str) -> None:
    """Wait until every entry about ``subject`` (e.g. ``asset:ast_…``) has an index."""
    import asyncio

    for _ in range(100):
        items = (await client.get("/v1/ledger/entries", params={"subject": subject})).json()["items"]
        if items and all(i["index"] is not None for i in items):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"entries of {subject} not integrated within 5 s")


@dataclass
class Snapshot:
    """An asset as a staff reader sees it, and the leaf hashes of its ledger entries."""

    client: Any
    asset_id: str
    viewer: Party
    asset: dict[str, Any]
    leaves: list[str]

    @classmethod
    async def take(cls, client: Any, asset_id: str, viewer: Party) -> "Snapshot":
        r = await client.get(f"/v1/assets/{asset_id}", headers=viewer.auth)
        assert r.status_code == 200, r.text
        leaves = [i["leaf_hash"] for i in await ledger_items(client, asset_id)]
        return cls(client, asset_id, viewer, r.json(), leaves)

    async def assert_unchanged(self) -> None:
        now = await Snapshot.take(self.client, self.asset_id, self.viewer)
        assert now.asset == self.asset
        assert now.leaves == self.leaves


def signing_bytes_of(document: Any) -> str:
    """Base64 of the RFC 8785 form of ``document``."""
    import rfc8785

    return base64.b64encode(rfc8785.dumps(document)).decode()


async def fetch_claim(client: Any, signer: Signer, asset_id: str, rights: str | None = None) -> dict[str, Any]:
    params = {"rights": rights} if rights else None
    r = await client.get(f"/v1/assets/{asset_id}/claim", params=params, headers=signer.auth)
    assert r.status_code == 200, r.text
    return r.json()


async def post_claim(client: Any, signer: Signer, asset_id: str, signing_bytes: str, key_id: str | None = None,
                     signature: str | None = None) -> Any:
    return await client.post(f"/v1/assets/{asset_id}/claim", headers=signer.auth, json={
        "signing_bytes": signing_bytes, "key_id": key_id or signer.key_id,
        "signature": signature if signature is not None else signer.sign(signing_bytes),
    })


@dataclass
class OwnApp:
    client: Any
    parties: Parties
    operator: Party


def own_app(databases: Any, data_dir: Any, clock: Any = None, **overrides: Any) -> Any:
    """An app of its own (fresh database) with settings overridden, as an async context manager."""
    import contextlib

    @contextlib.asynccontextmanager
    async def running() -> Any:
        from litestar.testing import AsyncTestClient

        from market.web.app import create_app
        from market.wiring.bootstrap import create_staff_account
        from tests.conftest import make_settings

        settings = make_settings(data_dir, await databases.new(), **overrides)
        token = await create_staff_account(settings, "Operator", "operator")
        async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
            op = Party("", token, {})
            r = await client.get("/v1/accounts/me", headers=op.auth)
            assert r.status_code == 200, r.text
            op.id, op.body = r.json()["id"], r.json()
            yield OwnApp(client, Parties(client, settings, op), op)

    return running()


async def salted_detail(client: Any, data: dict[str, Any], what: str = "reason") -> dict[str, Any]:
    """The salted document an entry's (or document's) ``<what>_salted_sha256`` names, as
    the market keeps it (``audit.salted``), checked against the digest; its salt is there
    and no unsalted digest of its details is in ``data``."""
    import hashlib
    import json

    import rfc8785
    from sqlalchemy import select

    from market.core.audit import TradeDocument

    digest = data[f"{what}_salted_sha256"]
    assert f"{what}_sha256" not in data and what not in data

    async def run() -> str:
        async with client.app.state.services.read_sessionmaker() as s:
            return str((await s.execute(select(TradeDocument.document).where(
                TradeDocument.document_sha256 == digest))).scalar_one())

    document = json.loads(client.blocking_portal.call(run))
    assert hashlib.sha256(rfc8785.dumps(document)).hexdigest() == digest and len(document["salt"]) == 44
    for value in document.values():
        if isinstance(value, str):
            assert hashlib.sha256(value.encode()).hexdigest() not in json.dumps(data)
    return document
