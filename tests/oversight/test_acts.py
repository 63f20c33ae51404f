"""Regulators' signed acts (docs/API.md "Regulators"): every
action, approval and alert closure is drafted, signed with a key the regulator's
authority enrolled, and submitted; each bad submission is refused with its own problem
type and changes nothing; the act is on the ledger by its hash, key id and signature,
and kept whole for the regulator's replay."""

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from market.core.types import rfc3339, utcnow
from tests.conftest import Parties, Party, assert_problem
from tests.oversight.test_alerts import alerts_about, evaluate
from tests.registry_support import entry_types, ledger_items
from tests.regulator_acts import act, draft, public_key_of, sign, signed_act
from tests.trading.support import buyer, offer, place

ACTIONS = "/v1/oversight/actions"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def resigned(regulator: Party, document: dict[str, Any], key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    """A document the test made itself (not drafted by the market), signed."""
    raw = rfc8785.dumps(document)
    return {"signing_bytes": _b64(raw), "key_id": regulator.key_id or "",
            "signature": _b64((key or regulator.key).sign(raw))}


async def freeze_body(client: Any, parties: Parties, operator: Party) -> dict[str, Any]:
    _, listing = await offer(client, parties, operator)
    return {"action": "freeze_asset", "target": listing["asset_id"], "reason": "complaint under review"}


async def test_draft_is_a_salted_act_of_the_caller(client: Any, parties: Parties, operator: Party,
                                                   regulator: Party) -> None:
    body = await freeze_body(client, parties, operator)
    r = await draft(client, regulator, "action", body)
    assert r.status_code == 200, r.text
    document, signing_bytes = r.json()["document"], r.json()["signing_bytes"]
    assert base64.b64decode(signing_bytes) == rfc8785.dumps(document)
    assert {k: document[k] for k in ("type", "v", "kind", "regulator", *body)} == {
        "type": "regulator-act", "v": 1, "kind": "action", "regulator": regulator.id, **body}
    assert len(base64.b64decode(document["salt"])) == 32 and document["market"] and document["issued_at"]
    again = (await draft(client, regulator, "action", body)).json()["document"]
    assert again["salt"] != document["salt"]
    # Only regulators draft; a bad kind or bad fields are 422.
    who = await parties.verified(["buyer"])
    for party in (operator, who):
        assert_problem(await draft(client, party, "action", body), 403, "wrong-role")
    assert_problem(await client.post("/v1/oversight/acts/draft", json={"kind": "action", **body}), 401)
    assert_problem(await draft(client, regulator, "veto", body), 422)
    assert_problem(await draft(client, regulator, "action", {**body, "action": "delete_everything"}), 422)
    assert_problem(await draft(client, regulator, "action", {**body, "extra": 1}), 422)
    assert_problem(await draft(client, regulator, "alert_closure", {"reason": "no alert named"}), 422)


async def test_an_action_needs_a_good_signature_by_an_enrolled_key(client: Any, parties: Parties,
                                                                   operator: Party, regulator: Party) -> None:
    body = await freeze_body(client, parties, operator)
    asset_id = body["target"]
    other = await parties.regulator()
    signed = await signed_act(client, regulator, "action", body)
    document = json.loads(base64.b64decode(signed["signing_bytes"]))

    # Unsigned bodies, and anyone but a regulator.
    assert_problem(await client.post(ACTIONS, json=body, headers=regulator.auth), 422, "unsigned-act")
    assert_problem(await client.post(ACTIONS, json={}, headers=regulator.auth), 422, "unsigned-act")
    assert_problem(await client.post(ACTIONS, json=signed, headers=operator.auth), 403, "wrong-role")
    assert_problem(await client.post(ACTIONS, json=signed), 401)
    # A forged signature; another regulator's key; the act sent by another regulator.
    forged = {**signed, "signature": sign(Ed25519PrivateKey.generate(), signed["signing_bytes"])}
    assert_problem(await client.post(ACTIONS, json=forged, headers=regulator.auth), 422, "bad-signature")
    theirs = {**signed, "key_id": other.key_id, "signature": sign(other.key, signed["signing_bytes"])}
    assert_problem(await client.post(ACTIONS, json=theirs, headers=regulator.auth), 422, "unknown-key")
    assert_problem(await client.post(ACTIONS, json=signed, headers=other.auth), 422, "act-mismatch")
    assert_problem(await client.post(ACTIONS, json=theirs, headers=other.auth), 422, "act-mismatch")
    # Altered after signing; not canonical; stale; another kind.
    altered = resigned(regulator, {**document, "reason": "something else"})
    assert_problem(await client.post(ACTIONS, json={**altered, "signature": signed["signature"]},
                                     headers=regulator.auth), 422, "bad-signature")
    loose = _b64(json.dumps(document, indent=1).encode())
    assert_problem(await client.post(ACTIONS, json={**signed, "signing_bytes": loose}, headers=regulator.auth), 422,
                   "non-canonical-document")
    old = rfc3339(utcnow() - timedelta(hours=25))
    assert_problem(await client.post(ACTIONS, json=resigned(regulator, {**document, "issued_at": old}),
                                     headers=regulator.auth), 422, "stale-document")
    closure = await signed_act(client, regulator, "alert_closure", {"alert": "alr_any", "reason": "seen"})
    assert_problem(await client.post(ACTIONS, json=closure, headers=regulator.auth), 422, "act-mismatch")
    extra = resigned(regulator, {**document, "note": "added"})
    assert_problem(await client.post(ACTIONS, json=extra, headers=regulator.auth), 422, "altered-document")
    # A key the regulator registered itself, not enrolled by the authority.
    own = Ed25519PrivateKey.generate()
    r = await client.post("/v1/accounts/me/keys", json={"public_key": public_key_of(own)}, headers=regulator.auth)
    assert r.status_code == 201, r.text
    unenrolled = {**signed, "key_id": r.json()["id"], "signature": sign(own, signed["signing_bytes"])}
    assert_problem(await client.post(ACTIONS, json=unenrolled, headers=regulator.auth), 422, "key-not-enrolled")
    # Nothing of it happened.
    assert "asset.frozen" not in await entry_types(client, asset_id)
    assert (await client.get(ACTIONS, params={"target": asset_id}, headers=regulator.auth)).json()["items"] == []

    r = await client.post(ACTIONS, json=signed, headers=regulator.auth)
    assert r.status_code == 201, r.text
    entry = r.json()["entry"]["entry"]
    digest = hashlib.sha256(base64.b64decode(signed["signing_bytes"])).hexdigest()
    assert entry["data"] == {"action": "freeze_asset", "target": asset_id,
                             "act": {"document_sha256": digest, "key_id": regulator.key_id,
                                     "signature": signed["signature"]}}
    assert body["reason"] not in json.dumps(entry)
    # Used once: the same signed act again is refused (after an unfreeze it would re-freeze).
    r = await act(client, regulator, "action", ACTIONS, {**body, "action": "unfreeze_asset"})
    assert r.status_code == 201, r.text
    assert_problem(await client.post(ACTIONS, json=signed, headers=regulator.auth), 409, "act-used")
    # The act is kept whole for the replay.
    acts = (await client.get("/v1/oversight/acts", params={"limit": 500}, headers=regulator.auth)).json()["items"]
    kept = [a for a in acts if a["document_sha256"] == digest]
    assert kept and kept[0]["document"] == document and kept[0]["key_id"] == regulator.key_id
    assert kept[0]["signature"] == signed["signature"] and kept[0]["kind"] == "action"
    assert_problem(await client.get("/v1/oversight/acts", headers=operator.auth), 403, "wrong-role")


async def test_a_revoked_key_signs_nothing(client: Any, parties: Parties, operator: Party) -> None:
    regulator = await parties.regulator()
    body = await freeze_body(client, parties, operator)
    signed = await signed_act(client, regulator, "action", body)
    r = await client.delete(f"/v1/accounts/me/keys/{regulator.key_id}", headers=regulator.auth)
    assert r.status_code == 204, r.text
    assert_problem(await client.post(ACTIONS, json=signed, headers=regulator.auth), 422, "revoked-key")
    assert "asset.frozen" not in await entry_types(client, body["target"])


async def test_an_approval_is_a_signed_act_about_that_order(client: Any, parties: Parties, operator: Party,
                                                            regulator: Party) -> None:
    _, listing = await offer(client, parties, operator, asset={"grade": "important"})
    who = await buyer(client, parties)
    first, second = await place(client, who, listing), await place(client, who, listing)
    path = f"/v1/orders/{first['id']}/regulator-approval"
    yes = {"order": first["id"], "decision": "approve", "reason": "important data, purpose checked"}
    assert_problem(await client.post(path, json={"decision": "approve"}, headers=regulator.auth), 422,
                   "unsigned-act")
    # An approval of the second order sent to the first's route; another kind.
    for_second = await signed_act(client, regulator, "approval", {**yes, "order": second["id"]})
    assert_problem(await client.post(path, json=for_second, headers=regulator.auth), 422, "act-mismatch")
    action = await signed_act(client, regulator, "action", {"action": "freeze_asset", "target": listing["asset_id"],
                                                            "reason": "x"})
    assert_problem(await client.post(path, json=action, headers=regulator.auth), 422, "act-mismatch")
    signed = await signed_act(client, regulator, "approval", yes)
    assert_problem(await client.post(path, json=signed, headers=operator.auth), 403, "wrong-role")
    assert_problem(await client.post(path, json={**signed, "signature": sign(Ed25519PrivateKey.generate(),
                                                                            signed["signing_bytes"])},
                                     headers=regulator.auth), 422, "bad-signature")
    assert (await client.get(f"/v1/orders/{first['id']}", headers=regulator.auth)).json()["approvals"][
        "regulator"] == "pending"
    r = await client.post(path, json=signed, headers=regulator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["approvals"]["regulator"] == "approved"
    assert_problem(await client.post(path, json=signed, headers=regulator.auth), 409)
    # The act is kept (its evidence is in the decision's trade document: test_replay).
    digest = hashlib.sha256(base64.b64decode(signed["signing_bytes"])).hexdigest()
    acts = (await client.get("/v1/oversight/acts", params={"limit": 500}, headers=regulator.auth)).json()["items"]
    [kept] = [a for a in acts if a["document_sha256"] == digest]
    assert kept["subject"] == f"order:{first['id']}" and kept["kind"] == "approval"


async def test_an_alert_closure_is_a_signed_act_about_that_alert(client: Any, parties: Parties, operator: Party,
                                                                 regulator: Party) -> None:
    _, listing = await offer(client, parties, operator, asset={"personal_info": "identifiable",
                                                                "legal_basis": "个人信息主体的单独同意"})
    who = await buyer(client, parties)
    a, b = await place(client, who, listing), await place(client, await buyer(client, parties), listing)
    evaluate(client)
    [first] = await alerts_about(client, regulator, "identifiable_pi_sale", a["id"])
    [second] = await alerts_about(client, regulator, "identifiable_pi_sale", b["id"])
    path = f"/v1/oversight/alerts/{first['id']}/closure"
    wrong = await signed_act(client, regulator, "alert_closure", {"alert": second["id"], "reason": "seen"})
    assert_problem(await client.post(path, json=wrong, headers=regulator.auth), 422, "act-mismatch")
    other = await parties.regulator()
    theirs = await signed_act(client, other, "alert_closure", {"alert": first["id"], "reason": "seen"})
    assert_problem(await client.post(path, json=theirs, headers=regulator.auth), 422, "act-mismatch")
    assert_problem(await client.post(path, json={**theirs, "key_id": regulator.key_id}, headers=regulator.auth),
                   422)
    assert [x["status"] for x in await alerts_about(client, regulator, "identifiable_pi_sale", a["id"])] == ["open"]
    r = await act(client, regulator, "alert_closure", path, {"alert": first["id"], "reason": "seen"})
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text


async def test_the_enrollment_is_on_the_ledger_without_the_name(client: Any, parties: Parties,
                                                               regulator: Party) -> None:
    name = "深圳市数据监管局 enrollment test"
    fresh = await parties.regulator(name)
    items = await ledger_items(client, fresh.id, kind="account")
    [enrolled] = [i["entry"] for i in items if i["entry"]["type"] == "regulator.enrolled"]
    assert set(enrolled["data"]) == {"enrollment_sha256", "authority", "signature", "key_id", "public_key"}
    assert enrolled["data"]["key_id"] == fresh.key_id
    assert enrolled["data"]["public_key"] == public_key_of(fresh.key)
    assert name not in json.dumps([i["entry"] for i in items], ensure_ascii=False)
    rows = (await client.get("/v1/oversight/enrollments", params={"limit": 500}, headers=regulator.auth)).json()
    [row] = [e for e in rows["items"] if e["account"] == fresh.id]
    assert row["enrollment"]["enrollment"]["name"] == name
    assert row["enrollment_sha256"] == enrolled["data"]["enrollment_sha256"] == hashlib.sha256(
        rfc8785.dumps(row["enrollment"]["enrollment"])).hexdigest()
