"""``market oversight replay --authority VKEY`` against a real ``market serve``: every
regulator act in the log was signed by a key the authority enrolled (exit 0); an act
the operator forges straight into the database — a regulator account and key inserted
by SQL, never enrolled, and an action signed with that key and appended to the ledger
with the market's own key — is named (exit 1); under another authority every act is."""

import asyncio
import base64
import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from market.core import audit
from market.core.context import Ctx
from market.core.ids import new_id
from market.core.types import rfc3339, utcnow
from market.wiring import services as wiring
from tests.conftest import Parties, Party, make_settings
from tests.oversight.test_replay import _settled
from tests.regulator_acts import act, authority_keygen, enroll_regulator, public_key_of
from tests.serving import serving
from tests.trading.support import buyer, offer, place

pytestmark = pytest.mark.slow


def _cli(base: str, vkey: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "market.tools.cli", "oversight", "replay", base, "--vkey", vkey, "--token", token,
         "--workers", "1", *extra],
        capture_output=True, text=True, timeout=120, env={**os.environ, "MARKET_LOG_LEVEL": "WARNING"})


async def _forge_an_act(settings: Any, asset_id: str) -> tuple[str, str]:
    """What an operator with database access and the ledger key could do: a regulator
    account and key by SQL (no enrollment), and a freeze 'signed' with that key, recorded
    as the market records an act. Returns (action id, forged key id)."""
    key = Ed25519PrivateKey.generate()
    account_id, key_id, action_id, now = new_id("acct"), new_id("key"), new_id("act"), utcnow()
    document = {"type": "regulator-act", "v": 1, "market": "forged", "kind": "action", "regulator": account_id,
                "issued_at": rfc3339(now), "salt": base64.b64encode(os.urandom(32)).decode(),
                "action": "freeze_asset", "target": asset_id, "reason": "forged"}
    raw = rfc8785.dumps(document)
    signature = base64.b64encode(key.sign(raw)).decode()
    digest = audit.document_digest(document)
    async with wiring.services(settings, content=False, listen=False) as services:
        async with services.sessionmaker() as session:
            await session.execute(text(
                "INSERT INTO accounts (id, name, kind, roles, jurisdiction, status, version, suspended, created_at) "
                "VALUES (:id, 'Forged regulator', 'institution', 'regulator', 'CN', 'verified', 0, false, :now)"),
                {"id": account_id, "now": now})
            await session.execute(text(
                "INSERT INTO account_keys (id, account_id, public_key, created_at) VALUES (:id, :a, :k, :now)"),
                {"id": key_id, "a": account_id, "k": public_key_of(key), "now": now})
            await session.execute(text(
                "INSERT INTO regulator_acts (id, kind, account_id, key_id, signature, subject, document, "
                "document_sha256, created_at) VALUES (:id, 'action', :a, :k, :s, :subj, :d, :h, :now)"),
                {"id": new_id("sig"), "a": account_id, "k": key_id, "s": signature, "subj": f"action:{action_id}",
                 "d": raw.decode(), "h": digest, "now": now})
            await audit.record(session, Ctx.system(services), "oversight.action", f"action:{action_id}", account_id,
                               {"action": "freeze_asset", "target": asset_id,
                                "act": {"document_sha256": digest, "key_id": key_id, "signature": signature}})
            await session.commit()
    return action_id, key_id


async def _record_unsigned_closure(settings: Any, regulator_id: str) -> None:
    """An alert closure written as before acts were signed: a reason's hash, no act."""
    async with wiring.services(settings, content=False, listen=False) as services:
        async with services.sessionmaker() as session:
            await audit.record(session, Ctx.system(services), "oversight.alert_closed", "alert:alr_forged",
                               regulator_id, {"rule": "wash_trade", "reason_sha256": "0" * 64})
            await session.commit()


async def test_replay_names_a_regulator_act_the_authority_did_not_enroll(databases: Any, tmp_path_factory: Any,
                                                                         tmp_path: Any) -> None:
    settings = make_settings(tmp_path_factory.mktemp("replay-acts"), await databases.new())
    async with serving(settings) as served:
        async with httpx.AsyncClient(base_url=served.base, timeout=60) as client:
            r = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {served.operator_token}"})
            operator = Party(r.json()["id"], served.operator_token, r.json())
            parties = Parties(client, settings, operator)  # type: ignore[arg-type]
            regulator = await enroll_regulator(client, settings, "Replay regulator")
            _, listing = await offer(client, parties, operator)
            _, important = await offer(client, parties, operator, asset={"grade": "important"})
            asset_id = listing["asset_id"]
            for action in ("freeze_asset", "unfreeze_asset"):
                r = await act(client, regulator, "action", None,
                              {"action": action, "target": asset_id, "reason": "a complaint"})
                assert r.status_code == 201, r.text
            order = await place(client, await buyer(client, parties), important)
            r = await act(client, regulator, "approval", None, {"order": order["id"], "decision": "approve"})
            assert r.status_code == 200, r.text
            await _settled(client, settings.sqlalchemy_url)
            vkey = (await client.get("/v1/ledger/key")).json()["vkey"]

            done = await asyncio.to_thread(_cli, served.base, vkey, regulator.token, "--authority",
                                           settings.regulator_authority, "--json")
            report = json.loads(done.stdout)
            assert done.returncode == 0 and report["ok"], done.stdout + done.stderr
            assert report["acts_checked"] == 3 and report["findings"] == []
            # Without --authority the acts are not checked, and the replay says so.
            done = await asyncio.to_thread(_cli, served.base, vkey, regulator.token)
            assert done.returncode == 0 and "regulator acts" not in done.stdout.splitlines()[-1], done.stdout

            # Under another authority nothing the market's regulators signed holds.
            other = authority_keygen(tmp_path / "other.key", "other-authority")
            done = await asyncio.to_thread(_cli, served.base, vkey, regulator.token, "--authority", other)
            assert done.returncode == 1, done.stdout + done.stderr
            lines = done.stdout.splitlines()
            assert sum(line.startswith("act:") for line in lines) == 3, done.stdout
            assert any(line.startswith("enrollment:") and regulator.id in line for line in lines), done.stdout

            # An operator's forgery: named, by its entry, subject and key.
            action_id, key_id = await _forge_an_act(settings, asset_id)
            await _settled(client, settings.sqlalchemy_url)
            done = await asyncio.to_thread(_cli, served.base, vkey, regulator.token, "--authority",
                                           settings.regulator_authority)
            assert done.returncode == 1, done.stdout + done.stderr
            named = [line for line in done.stdout.splitlines() if line.startswith("act:")]
            assert len(named) == 1, done.stdout
            assert f"oversight.action action:{action_id}" in named[0] and key_id in named[0]
            assert "not enrolled" in named[0]
            assert done.stdout.splitlines()[-1].startswith("DIFFERENCES:")

            # A decision recorded with no signed act at all, in the real regulator's name.
            await _record_unsigned_closure(settings, regulator.id)
            await _settled(client, settings.sqlalchemy_url)
            done = await asyncio.to_thread(_cli, served.base, vkey, regulator.token, "--authority",
                                           settings.regulator_authority)
            named = [line for line in done.stdout.splitlines() if line.startswith("act:")]
            assert done.returncode == 1 and len(named) == 2, done.stdout
            assert any("oversight.alert_closed alert:alr_forged" in line and "carries no signed act" in line
                       for line in named), done.stdout
