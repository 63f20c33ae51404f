"""Helpers for registry tests: a provider with a signing key, and the claim round trip."""

import base64
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
