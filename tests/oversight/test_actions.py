"""Regulators' actions (docs/API.md "Oversight"): roles, targets, effects at once on search,
ordering, delivery and the API; the revocation served as a bundle; the approvals queue;
the ledger's status."""

import hashlib
import json
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import note
from ledger.bundle import verify_bundle
from market.core.audit import document_digest
from tests.conftest import Parties, Party, assert_problem
from tests.listings.support import found_ids, word
from tests.registry_support import entry_types, ledger_items, own_app, salted_detail, wait_integrated
from tests.regulator_acts import act, signed_act
from tests.trading.support import FREE, ONE_TIME, buyer, offer, order_body, place

ACTIONS = "/v1/oversight/actions"


async def take(client: Any, who: Party, action: str, target: str, reason: str = "complaint under review",
               **headers: str) -> Any:
    """A regulator's signed act; anyone else posts the plain request (and is refused)."""
    body = {"action": action, "target": target, "reason": reason}
    if getattr(who, "key", None) is None:
        return await client.post(ACTIONS, json=body, headers={**who.auth, **headers})
    return await act(client, who, "action", ACTIONS, body, headers=headers)


async def taken(client: Any, who: Party, action: str, target: str, reason: str = "complaint under review") \
        -> dict[str, Any]:
    r = await take(client, who, action, target, reason)
    assert r.status_code == 201, r.text
    return r.json()


async def market(client: Any, parties: Parties, operator: Party) -> dict[str, Any]:
    """A findable listing with free and one-time plans, and a buyer with an active order."""
    title = word()
    holder, listing = await offer(client, parties, operator, plans=[FREE, ONE_TIME], title=f"监管 {title}")
    who = await buyer(client, parties)
    order = await place(client, who, listing)
    return {"holder": holder, "listing": listing, "buyer": who, "order": order, "word": title}


async def assert_effective(client: Any, m: dict[str, Any], on: bool) -> None:
    """Whether the listing is found, orderable and its order delivered."""
    assert (m["listing"]["id"] in await found_ids(client, q=m["word"])) is on
    other = await buyer(client, parties=m["parties"])
    r = await client.post("/v1/orders", json=order_body(m["listing"]), headers=other.auth)
    if on:
        assert r.status_code == 201, r.text
    else:
        assert_problem(r, 409, "not-orderable")
    r = await client.get(f"/v1/orders/{m['order']['id']}/content", headers=m["buyer"].auth)
    if on:
        assert r.status_code == 200, r.text
    else:
        assert_problem(r, 409, "no-access")


async def test_only_regulators_act(client: Any, parties: Parties, operator: Party, regulator: Party) -> None:
    m = await market(client, parties, operator)
    asset_id = m["listing"]["asset_id"]
    for who in (operator, m["holder"].party, m["buyer"]):
        assert_problem(await take(client, who, "freeze_asset", asset_id), 403, "wrong-role")
    assert_problem(await client.post(ACTIONS, json={"action": "freeze_asset", "target": asset_id, "reason": "x"}),
                   401)
    for action, target in (("freeze_asset", "ast_nosuch"), ("freeze_listing", "lst_nosuch"),
                           ("suspend_account", "acct_nosuch"), ("revoke_registration", "ast_nosuch")):
        assert_problem(await take(client, regulator, action, target), 404)
    assert_problem(await take(client, regulator, "delete_everything", asset_id), 422)
    assert_problem(await take(client, regulator, "freeze_asset", asset_id, reason=" "), 422)
    # Nothing happened.
    assert "asset.frozen" not in await entry_types(client, asset_id)
    assert (await client.get(ACTIONS, params={"target": asset_id}, headers=regulator.auth)).json()["items"] == []


async def test_freeze_and_unfreeze_an_asset(client: Any, parties: Parties, operator: Party,
                                            regulator: Party) -> None:
    m = await market(client, parties, operator)
    m["parties"] = parties
    asset_id = m["listing"]["asset_id"]
    await assert_effective(client, m, True)

    reason = "来源合法性存疑"
    action = await taken(client, regulator, "freeze_asset", asset_id, reason)
    assert action["action"] == "freeze_asset" and action["target"] == asset_id and action["actor"] == regulator.id
    assert action["effect"] == {"type": "asset.frozen", "subject": f"asset:{asset_id}"}
    entry = action["entry"]["entry"]
    assert entry["type"] == "oversight.action" and entry["subject"] == f"action:{action['id']}"
    assert entry["data"]["action"] == "freeze_asset" and entry["data"]["target"] == asset_id
    assert set(entry["data"]["act"]) == {"document_sha256", "key_id", "signature"}
    assert entry["data"]["act"]["key_id"] == regulator.key_id
    assert "reason_sha256" not in entry["data"]  # the reason is in the act's salted document
    assert action["entry"]["leaf_hash"]
    [item] = await ledger_items(client, action["id"], kind="action")
    assert item["leaf_hash"] == action["entry"]["leaf_hash"]
    assert "asset.frozen" in await entry_types(client, asset_id)
    await assert_effective(client, m, False)

    assert_problem(await take(client, regulator, "freeze_asset", asset_id), 409, "no-change")
    await taken(client, regulator, "unfreeze_asset", asset_id)
    await assert_effective(client, m, True)
    assert_problem(await take(client, regulator, "unfreeze_asset", asset_id), 409, "no-change")

    listed = (await client.get(ACTIONS, params={"target": asset_id}, headers=operator.auth)).json()["items"]
    assert [a["action"] for a in listed] == ["freeze_asset", "unfreeze_asset"]
    assert listed[0]["reason"] == reason
    assert_problem(await client.get(ACTIONS, headers=m["buyer"].auth), 403, "wrong-role")
    assert_problem(await client.get(ACTIONS), 401)


async def test_freeze_and_unfreeze_a_listing(client: Any, parties: Parties, operator: Party,
                                             regulator: Party) -> None:
    m = await market(client, parties, operator)
    m["parties"] = parties
    listing_id = m["listing"]["id"]
    action = await taken(client, regulator, "freeze_listing", listing_id)
    assert action["effect"] == {"type": "listing.frozen", "subject": f"listing:{listing_id}"}
    await assert_effective(client, m, False)
    assert_problem(await take(client, regulator, "freeze_listing", listing_id), 409, "no-change")
    await taken(client, regulator, "unfreeze_listing", listing_id)
    await assert_effective(client, m, True)


async def test_suspend_and_reinstate_an_account(client: Any, parties: Parties, operator: Party,
                                                regulator: Party) -> None:
    m = await market(client, parties, operator)
    who = m["buyer"]
    await taken(client, regulator, "suspend_account", who.id)
    # Read-only at once: reads work, writes are refused, delivery stops.
    assert (await client.get("/v1/accounts/me", headers=who.auth)).json()["suspended"] is True
    assert (await client.get(f"/v1/orders/{m['order']['id']}", headers=who.auth)).status_code == 200
    assert_problem(await client.post("/v1/orders", json=order_body(m["listing"]), headers=who.auth), 403)
    assert_problem(await client.get(f"/v1/orders/{m['order']['id']}/content", headers=who.auth), 403)
    assert_problem(await take(client, regulator, "suspend_account", who.id), 409, "no-change")
    await taken(client, regulator, "reinstate_account", who.id)
    r = await client.post("/v1/orders", json=order_body(m["listing"]), headers=who.auth)
    assert r.status_code == 201, r.text

    # A suspended holder's listing leaves search and cannot be ordered.
    m["parties"] = parties
    await taken(client, regulator, "suspend_account", m["holder"].id)
    assert m["listing"]["id"] not in await found_ids(client, q=m["word"])
    other = await buyer(client, parties)
    assert_problem(await client.post("/v1/orders", json=order_body(m["listing"]), headers=other.auth), 409,
                   "not-orderable")
    await taken(client, regulator, "reinstate_account", m["holder"].id)
    await assert_effective(client, m, True)


async def test_revoked_registration_is_served_as_a_revocation_bundle(client: Any, parties: Parties,
                                                                     operator: Party, regulator: Party) -> None:
    m = await market(client, parties, operator)
    asset_id = m["listing"]["asset_id"]
    old = (await client.get(f"/v1/assets/{asset_id}/certificate")).json()["document"]
    reason = "registration obtained with a forged claim"
    await taken(client, regulator, "revoke_registration", asset_id, reason)
    assert (await client.get(f"/v1/assets/{asset_id}")).json()["status"] == "revoked"
    assert m["listing"]["id"] not in await found_ids(client, q=m["word"])
    assert_problem(await take(client, regulator, "revoke_registration", asset_id), 409)

    await wait_integrated(client, f"asset:{asset_id}")
    bundle = (await client.get(f"/v1/assets/{asset_id}/certificate")).json()
    document = bundle["document"]
    assert document["type"] == "data-asset-registration-revocation"
    assert document["revoked_certificate_sha256"] == document_digest(old)
    assert document["registration_number"] == old["registration_number"]
    assert (await salted_detail(client, document))["reason"] == reason
    assert hashlib.sha256(reason.encode()).hexdigest() not in json.dumps(bundle)
    assert document["actor"] == regulator.id and document["asset"]["id"] == asset_id
    vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
    assert verify_bundle(bundle, vkey).status == "valid"
    revoked = [i["entry"] for i in await ledger_items(client, asset_id) if i["entry"]["type"] == "asset.revoked"]
    assert revoked[0]["data"]["document_sha256"] == document_digest(document)


async def test_idempotency_key_replays_the_action(client: Any, parties: Parties, operator: Party,
                                                  regulator: Party) -> None:
    m = await market(client, parties, operator)
    key = secrets.token_hex(8)
    signed = await signed_act(client, regulator, "action", {"action": "freeze_listing", "target": m["listing"]["id"],
                                                            "reason": "complaint under review"})
    headers = {**regulator.auth, "Idempotency-Key": key}
    first = await client.post(ACTIONS, json=signed, headers=headers)
    again = await client.post(ACTIONS, json=signed, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers.get("idempotent-replayed") == "true"
    items = (await client.get(ACTIONS, params={"target": m["listing"]["id"]}, headers=regulator.auth)).json()
    assert len(items["items"]) == 1


async def test_approvals_queue(client: Any, parties: Parties, operator: Party, regulator: Party) -> None:
    _, listing = await offer(client, parties, operator, asset={"grade": "important"})
    who = await buyer(client, parties)
    order = await place(client, who, listing)
    assert order["status"] == "pending_approval"
    waiting = {o["id"]: o for o in (await client.get("/v1/oversight/approvals", params={"limit": 500},
                                                     headers=regulator.auth)).json()["items"]}
    assert waiting[order["id"]]["listing"] == {"id": listing["id"], "title": listing["title"]}  # named, not an id
    for party in (operator, who):
        assert_problem(await client.get("/v1/oversight/approvals", headers=party.auth), 403, "wrong-role")
    r = await act(client, regulator, "approval", None, {"order": order["id"], "decision": "approve"})
    assert r.status_code == 200, r.text
    assert r.json()["listing"]["title"] == listing["title"]
    ids = [o["id"] for o in (await client.get("/v1/oversight/approvals", params={"limit": 500},
                                              headers=regulator.auth)).json()["items"]]
    assert order["id"] not in ids


async def test_ledger_status(databases: Any, tmp_path: Any) -> None:
    known = note.CosignatureSigner("witness.example/known", Ed25519PrivateKey.generate())
    silent = note.CosignatureSigner("witness.example/silent", Ed25519PrivateKey.generate())
    async with own_app(databases, tmp_path, ledger_witnesses=f"{known.vkey},{silent.vkey}") as own:
        client = own.client
        regulator = await own.parties.staff("regulator")
        await wait_integrated(client, f"account:{regulator.id}")
        signed = (await client.get("/v1/ledger/checkpoint")).text
        body = note.parse_checkpoint(signed.split("\n\n")[0] + "\n").body()
        r = await client.post("/v1/ledger/cosignatures", content=signed + known.signature_line(body, int(time.time())),
                              headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        size = int(body.split("\n")[1])

        for who in (regulator, own.operator):
            r = await client.get("/v1/oversight/ledger", headers=who.auth)
            assert r.status_code == 200, r.text
        status = r.json()
        assert status["size"] >= size and status["checkpoint_at"]
        assert status["pending"] >= 0 and status["integration_lag_seconds"] >= 0
        by_name = {w["name"]: w for w in status["witnesses"]}
        assert by_name["witness.example/known"]["last_cosigned_size"] == size
        assert by_name["witness.example/known"]["stale"] is False
        assert by_name["witness.example/silent"]["last_cosigned_size"] is None
        assert by_name["witness.example/silent"]["stale"] is True
        who = await own.parties.verified(["buyer"])
        assert_problem(await client.get("/v1/oversight/ledger", headers=who.auth), 403, "wrong-role")
        assert_problem(await client.get("/v1/oversight/ledger"), 401)
