"""The whole registration lifecycle over HTTP, and the certificate verified offline."""

import base64
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from ledger import merkle
from ledger.verify import verify_bundle
from tests.conftest import Parties, assert_problem
from tests.registry_support import (
    ASSET,
    draft,
    provider,
    registered_asset,
    sha256_hex,
    submit,
    upload,
    wait_integrated,
)


async def test_register_an_asset_end_to_end(client, parties: Parties, operator, tmp_path) -> None:
    p = await provider(client, parties)
    asset = await draft(client, p)
    assert asset["status"] == "draft" and asset["commitment"] is None and asset["id"].startswith("ast_")

    content = os.urandom(3 * 65536 + 123)
    commitment = await upload(client, p, asset["id"], content)
    leaves = [content[i:i + 65536] for i in range(0, len(content), 65536)]
    assert commitment == {
        "sha256": sha256_hex(content), "size": len(content), "chunk_size": 65536, "revision": 1,
        "merkle_root": merkle.root([merkle.leaf_hash(c) for c in leaves]).hex(),
    }

    r = await client.get(f"/v1/assets/{asset['id']}/claim", params={"rights": "use,holding"}, headers=p.auth)
    claim = r.json()
    assert claim["claim"]["rights"] == ["holding", "use"]
    assert claim["claim"]["asset"] == asset["id"] and claim["claim"]["provider"] == p.id
    assert claim["claim"]["commitment"]["sha256"] == commitment["sha256"]
    assert base64.b64decode(claim["signing_bytes"]) == json.dumps(
        claim["claim"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    r = await client.post(f"/v1/assets/{asset['id']}/claim", headers=p.auth, json={
        "signing_bytes": claim["signing_bytes"], "key_id": p.key_id, "signature": p.sign(claim["signing_bytes"])})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["rights"] == ["holding", "use"]

    # Before it is public, a stranger and the anonymous public see nothing.
    stranger = await parties.verified(["buyer"])
    assert_problem(await client.get(f"/v1/assets/{asset['id']}", headers=stranger.auth), 404)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}"), 404)

    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve", "reason": "ok"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    registered = r.json()
    assert registered["status"] == "registered"
    assert re.fullmatch(r"DR-\d{4}-\d{6}", registered["registration_number"])
    assert (await client.get(f"/v1/assets/{asset['id']}")).json()["status"] == "registered"

    subject = f"asset:{asset['id']}"
    await wait_integrated(client, subject)
    types = [i["entry"]["type"] for i in (await client.get("/v1/ledger/entries", params={"subject": subject})).json()["items"]]
    assert types == ["asset.created", "asset.content_uploaded", "asset.claim_submitted", "asset.approved",
                     "asset.notice_ended", "asset.registered"]
    history = (await client.get(f"/v1/assets/{asset['id']}/history")).json()["items"]
    assert [h["entry"]["type"] for h in history] == types

    bundle = (await client.get(f"/v1/assets/{asset['id']}/certificate")).json()
    document = bundle["document"]
    assert document["registration_number"] == registered["registration_number"]
    assert document["holder"]["id"] == p.id and document["rights"] == ["holding", "use"]
    assert document["commitment"]["sha256"] == commitment["sha256"]
    assert document["claim"] == claim["claim"]
    assert bundle["ledger"]["index"] is not None

    vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
    assert verify_bundle(bundle, vkey).status == "valid"
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(bundle, ensure_ascii=False))
    cli = [sys.executable, "-m", "ledger", "verify-bundle", str(path), "--vkey", vkey]
    root = Path(__file__).resolve().parent.parent
    assert subprocess.run(cli, cwd=root, capture_output=True).returncode == 0

    # One byte of the document changed: the offline check fails.
    forged = json.loads(json.dumps(bundle))
    forged["document"]["holder"]["name"] = forged["document"]["holder"]["name"] + "x"
    path.write_text(json.dumps(forged, ensure_ascii=False))
    assert subprocess.run(cli, cwd=root, capture_output=True).returncode == 1
    raw = bytearray(json.dumps(bundle, ensure_ascii=False).encode())
    position = raw.index(commitment["sha256"].encode())
    raw[position] = ord("0") if raw[position] != ord("0") else ord("1")
    path.write_bytes(bytes(raw))
    assert subprocess.run(cli, cwd=root, capture_output=True).returncode == 1


async def test_public_notice_objection_and_clock(databases, tmp_path) -> None:
    """Notice of 10 days: objections while open; registration once it ends with none open."""
    from litestar.testing import AsyncTestClient

    from market.core.clock import FakeClock
    from market.web.app import create_app
    from market.wiring.bootstrap import create_staff_account
    from market.wiring.tasks import close_notices_once
    from tests.conftest import Parties, Party, make_settings

    settings = make_settings(tmp_path, await databases.new(), notice_period="10d", clock_interval=0.05)
    clock = FakeClock()
    token = await create_staff_account(settings, "Op", "operator")
    async with AsyncTestClient(app=create_app(settings, clock=clock)) as client:
        op = Party("", token, {})
        op.id = (await client.get("/v1/accounts/me", headers=op.auth)).json()["id"]
        parties = Parties(client, settings, op)
        p = await provider(client, parties)
        objector = await parties.verified(["buyer"])
        unverified = await parties.sign_up(["buyer"])

        asset = await draft(client, p)
        await upload(client, p, asset["id"], b"hello data")
        await submit(client, p, asset["id"])
        r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=op.auth)
        assert r.json()["status"] == "public_notice" and r.json()["notice_ends_at"]
        assert (await client.get(f"/v1/assets/{asset['id']}")).status_code == 200  # public now

        assert_problem(await client.post(f"/v1/assets/{asset['id']}/objections", json={"reason": "mine"},
                                         headers=unverified.auth), 403, "account-not-verified")
        assert_problem(await client.post(f"/v1/assets/{asset['id']}/objections", json={"reason": "mine"},
                                         headers=p.auth), 403, "own-asset")
        r = await client.post(f"/v1/assets/{asset['id']}/objections",
                              json={"reason": "we collected this", "evidence": "contract #12"}, headers=objector.auth)
        assert r.status_code == 201, r.text
        objection = r.json()

        clock.advance(timedelta(days=11))
        # An open objection holds the registration back even after the period: a round
        # of the clock task, run here, registers nothing.
        assert asset["id"] not in client.blocking_portal.call(close_notices_once, client.app.state.services)
        assert (await client.get(f"/v1/assets/{asset['id']}")).json()["status"] == "public_notice"
        assert_problem(await client.post(f"/v1/objections/{objection['id']}/resolution",
                                         json={"decision": "dismiss", "reason": "no evidence"}, headers=p.auth), 403)
        r = await client.post(f"/v1/objections/{objection['id']}/resolution",
                              json={"decision": "dismiss", "reason": "no evidence"}, headers=op.auth)
        assert r.status_code == 200 and r.json()["status"] == "dismissed"
        # The next round registers it (this one, or the background's if it ran first).
        client.blocking_portal.call(close_notices_once, client.app.state.services)
        assert (await client.get(f"/v1/assets/{asset['id']}")).json()["status"] == "registered"

        # A second asset whose objection is upheld is rejected.
        second = await draft(client, p)
        await upload(client, p, second["id"], b"other data")
        await submit(client, p, second["id"])
        await client.post(f"/v1/assets/{second['id']}/review", json={"decision": "approve"}, headers=op.auth)
        o = (await client.post(f"/v1/assets/{second['id']}/objections", json={"reason": "stolen"},
                               headers=objector.auth)).json()
        r = await client.post(f"/v1/objections/{o['id']}/resolution", json={"decision": "uphold", "reason": "proven"},
                              headers=op.auth)
        assert r.json()["status"] == "upheld"
        assert (await client.get(f"/v1/assets/{second['id']}", headers=p.auth)).json()["status"] == "rejected"
        assert_problem(await client.post(f"/v1/objections/{o['id']}/resolution",
                                         json={"decision": "dismiss", "reason": "x"}, headers=op.auth), 409)


async def test_registration_numbers_are_gap_free_under_concurrency(client, parties: Parties, operator) -> None:
    from tests.registry_support import concurrently

    p = await provider(client, parties)
    ids = []
    for _ in range(6):
        a = await draft(client, p)
        await upload(client, p, a["id"], os.urandom(64))
        await submit(client, p, a["id"])
        ids.append(a["id"])
    results = await concurrently(client, *(("POST", f"/v1/assets/{i}/review",
                                            {"json": {"decision": "approve"}, "headers": operator.auth})
                                           for i in ids))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    numbers = sorted(r.json()["registration_number"] for r in results)
    serials = [int(n.rsplit("-", 1)[1]) for n in numbers]
    assert serials == list(range(serials[0], serials[0] + 6))
    assert len({n.split("-")[1] for n in numbers}) == 1


async def test_review_race_exactly_one_wins(client, parties: Parties, operator) -> None:
    import asyncio

    p = await provider(client, parties)
    a = await draft(client, p)
    await upload(client, p, a["id"], os.urandom(64))
    await submit(client, p, a["id"])
    results = await asyncio.gather(
        client.post(f"/v1/assets/{a['id']}/review", json={"decision": "approve"}, headers=operator.auth),
        client.post(f"/v1/assets/{a['id']}/review", json={"decision": "reject", "reason": "no"}, headers=operator.auth),
        client.post(f"/v1/assets/{a['id']}/review", json={"decision": "approve"}, headers=operator.auth),
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409, 409], [r.text for r in results]
    for r in results:
        if r.status_code == 409:
            assert_problem(r, 409)
    decided = [e["entry"]["type"] for e in (await client.get("/v1/ledger/entries",
               params={"subject": f"asset:{a['id']}"})).json()["items"]]
    assert decided.count("asset.approved") + decided.count("asset.rejected") == 1


async def test_registered_asset_helper(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await registered_asset(client, p, operator)
    assert asset["status"] == "registered" and asset["registered_revision"] == 1
    assert ASSET["title"] == asset["title"]


async def test_change_of_a_registered_asset(client, parties: Parties, operator) -> None:
    """变更: a new revision is re-reviewed; rejected, the registered revision stays; approved, it replaces it."""
    p = await provider(client, parties)
    first = os.urandom(1000)
    asset = await registered_asset(client, p, operator, content=first)
    number = asset["registration_number"]

    second = os.urandom(2000)
    await upload(client, p, asset["id"], second)
    still = (await client.get(f"/v1/assets/{asset['id']}", headers=p.auth)).json()
    assert still["status"] == "registered" and still["registered_revision"] == 1
    # What buyers receive is the registered content, not an upload nobody reviewed.
    assert still["commitment"]["sha256"] == sha256_hex(first)
    assert still["uploaded_commitment"]["sha256"] == sha256_hex(second)
    # The public sees the registration only: not the upload in preparation.
    public_view = (await client.get(f"/v1/assets/{asset['id']}")).json()
    assert public_view["commitment"] == still["commitment"]
    assert public_view["uploaded_commitment"] is None and public_view["conflicts_with"] is None
    submitted = await submit(client, p, asset["id"])
    assert submitted["status"] == "submitted" and submitted["commitment"]["sha256"] == sha256_hex(first)
    assert submitted["uploaded_commitment"]["sha256"] == sha256_hex(second)
    # While the change is under review the registration stands: the asset stays public,
    # listed, and its certificate (of the registered revision) is served.
    public = await client.get(f"/v1/assets/{asset['id']}")
    assert public.status_code == 200 and public.json()["registration_number"] == number
    listed = (await client.get("/v1/assets", params={"provider": p.id, "limit": 500})).json()["items"]
    assert asset["id"] in [a["id"] for a in listed]
    during = await client.get(f"/v1/assets/{asset['id']}/certificate")
    assert during.status_code == 200, during.text
    assert during.json()["document"]["commitment"]["sha256"] == sha256_hex(first)
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "reject", "reason": "not the same dataset"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["status"] == "registered" and back["registered_revision"] == 1
    assert back["commitment"]["sha256"] == sha256_hex(first) and back["registration_number"] == number
    assert back["uploaded_commitment"] is None and back["status_reason"] == "not the same dataset"

    third = os.urandom(3000)
    await upload(client, p, asset["id"], third)
    await submit(client, p, asset["id"])
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    changed = r.json()
    assert changed["status"] == "registered" and changed["registration_number"] == number
    assert changed["registered_revision"] == changed["commitment"]["revision"] == 3  # 2 stays on record, rejected
    assert changed["commitment"]["sha256"] == sha256_hex(third)
    bundle = (await client.get(f"/v1/assets/{asset['id']}/certificate")).json()
    assert bundle["document"]["commitment"]["sha256"] == sha256_hex(third)
    assert bundle["document"]["registration_number"] == number
