"""Regulators in tests: the regulator authority's key (one per test process), regulators
enrolled through the real path (``market.wiring.bootstrap.create_regulator_account``, what
``market admin create-regulator`` runs), and ``act``: draft, sign and submit a
regulator's act the way a regulator's client does."""

import base64
import functools
import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from market.accounts.enrollment import authority_keygen, enroll
from market.core.config import Settings
from market.core.types import utcnow
from market.wiring.bootstrap import create_regulator_account


@dataclass(frozen=True)
class Authority:
    path: Path  # the private key file
    vkey: str


@functools.cache
def authority() -> Authority:
    """The regulator authority of this test process (every ``make_settings`` trusts it)."""
    directory = Path(tempfile.mkdtemp(prefix="authority-"))
    path = directory / "authority.key"
    return Authority(path, authority_keygen(path, "test-regulator-authority"))


def public_key_of(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def enrollment_file(name: str, key: Ed25519PrivateKey, by: Authority | None = None) -> bytes:
    return json.dumps(enroll((by or authority()).path, name, public_key_of(key), utcnow())).encode()


async def enroll_regulator(client: Any, settings: Settings, name: str | None = None) -> Any:
    """A regulator enrolled by the test authority, as a ``Party`` with ``key`` and ``key_id``."""
    from tests.conftest import Party

    key = Ed25519PrivateKey.generate()
    token = await create_regulator_account(settings, enrollment_file(name or f"Regulator {secrets.token_hex(3)}", key))
    auth = {"Authorization": f"Bearer {token}"}
    me = await client.get("/v1/accounts/me", headers=auth)
    assert me.status_code == 200, me.text
    keys = await client.get("/v1/accounts/me/keys", headers=auth)
    assert keys.status_code == 200, keys.text
    return Party(me.json()["id"], token, me.json(), key=key, key_id=keys.json()["items"][0]["id"])


ROUTES = {"action": "/v1/oversight/actions"}


def route_of(kind: str, body: dict[str, Any]) -> str:
    if kind == "approval":
        return f"/v1/orders/{body['order']}/regulator-approval"
    if kind == "alert_closure":
        return f"/v1/oversight/alerts/{body['alert']}/closure"
    return ROUTES[kind]


async def draft(client: Any, regulator: Any, kind: str, body: dict[str, Any]) -> Any:
    return await client.post("/v1/oversight/acts/draft", json={"kind": kind, **body}, headers=regulator.auth)


def sign(key: Ed25519PrivateKey, signing_bytes: str) -> str:
    return base64.b64encode(key.sign(base64.b64decode(signing_bytes))).decode()


async def signed_act(client: Any, regulator: Any, kind: str, body: dict[str, Any], *,
                     key: Ed25519PrivateKey | None = None, key_id: str | None = None) -> dict[str, str]:
    """The body a regulator's route takes: the drafted act, signed."""
    drafted = await draft(client, regulator, kind, body)
    assert drafted.status_code == 200, drafted.text
    signing_bytes = drafted.json()["signing_bytes"]
    return {"signing_bytes": signing_bytes, "key_id": key_id or regulator.key_id,
            "signature": sign(key or regulator.key, signing_bytes)}


async def act(client: Any, regulator: Any, kind: str, route: str | None, body: dict[str, Any], *,
              key: Ed25519PrivateKey | None = None, key_id: str | None = None,
              headers: dict[str, str] | None = None) -> Any:
    """Draft the act of ``kind`` with ``body``, sign it with the regulator's key (or
    ``key``/``key_id``), and post it to ``route`` (default: the kind's route). Returns
    the response: the route's, or the draft's when drafting was refused."""
    drafted = await draft(client, regulator, kind, body)
    if drafted.status_code != 200:
        return drafted
    signing_bytes = drafted.json()["signing_bytes"]
    signed = {"signing_bytes": signing_bytes, "key_id": key_id or regulator.key_id,
              "signature": sign(key or regulator.key, signing_bytes)}
    return await client.post(route or route_of(kind, body), json=signed, headers={**regulator.auth, **(headers or {})})
