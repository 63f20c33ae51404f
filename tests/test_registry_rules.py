"""Registry rules over HTTP: every refusal has its own status and problem type, and a
refused request changes nothing (the asset reads back the same and no ledger entry,
pending or integrated, was added about it).

The happy path of a registration is in ``test_registry_lifecycle.py``.
"""

import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.verify import verify_bundle
from market.core.clock import FakeClock
from tests.conftest import Parties, Party, assert_problem
from tests.registry_support import (
    ASSET,
    Signer,
    Snapshot,
    add_key,
    draft,
    entry_types,
    fetch_claim,
    ledger_items,
    own_app,
    post_claim,
    propose,
    provider,
    read_asset,
    registered_asset,
    salted_detail,
    signing_bytes_of,
    submit,
    submitted_asset,
    upload,
    wait_integrated,
    with_content,
)

PUBLIC = {"public_notice", "registered", "revoked", "cancelled"}





async def last_entry(client: Any, asset_id: str, entry_type: str) -> dict[str, Any]:
    matching = [i["entry"] for i in await ledger_items(client, asset_id) if i["entry"]["type"] == entry_type]
    assert matching, f"no {entry_type} entry about {asset_id}"
    return matching[-1]


async def list_ids(client: Any, viewer: Party | Signer | None = None, **params: Any) -> list[str]:
    """Every asset id the viewer is shown, walking all pages."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {"limit": 500, **params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/assets", params=query, headers=viewer.auth if viewer else {})
        assert r.status_code == 200, r.text
        ids += [a["id"] for a in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return ids


# -- claim submission: every refusal has its own type and changes nothing -----------------


async def test_claim_signed_with_another_accounts_key_is_unknown_key(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    other = await provider(client, parties)
    asset = await with_content(client, p)
    claim = await fetch_claim(client, p, asset["id"])
    before = await Snapshot.take(client, asset["id"], operator)

    sb = claim["signing_bytes"]
    assert_problem(await post_claim(client, p, asset["id"], sb, key_id=other.key_id, signature=other.sign(sb)),
                   422, "unknown-key")
    assert_problem(await post_claim(client, p, asset["id"], sb, key_id="key_doesnotexist", signature=p.sign(sb)),
                   422, "unknown-key")
    await before.assert_unchanged()

    # The very same bytes, signed with the provider's own key, pass.
    r = await post_claim(client, p, asset["id"], sb)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"


async def test_claim_signed_with_a_revoked_key(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    spare = await add_key(client, p.party)
    r = await client.delete(f"/v1/accounts/me/keys/{spare.key_id}", headers=p.auth)
    assert r.status_code == 204, r.text
    asset = await with_content(client, p)
    sb = (await fetch_claim(client, p, asset["id"]))["signing_bytes"]
    before = await Snapshot.take(client, asset["id"], operator)

    assert_problem(await post_claim(client, p, asset["id"], sb, key_id=spare.key_id, signature=spare.sign(sb)),
                   422, "revoked-key")
    await before.assert_unchanged()
    assert (await post_claim(client, p, asset["id"], sb)).status_code == 200


@pytest.mark.parametrize("case", ["over other bytes", "not base64", "too short", "too long"])
async def test_claim_with_a_bad_signature(client, parties: Parties, operator, case: str) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    sb = (await fetch_claim(client, p, asset["id"]))["signing_bytes"]
    good = base64.b64decode(p.sign(sb))
    signature = {
        "over other bytes": p.sign(base64.b64encode(b"some other bytes").decode()),
        "not base64": "this is !! not base64",
        "too short": base64.b64encode(good[:32]).decode(),
        "too long": base64.b64encode(good + b"\x00").decode(),
    }[case]
    before = await Snapshot.take(client, asset["id"], operator)

    assert_problem(await post_claim(client, p, asset["id"], sb, signature=signature), 422, "bad-signature")
    await before.assert_unchanged()
    assert (await post_claim(client, p, asset["id"], sb)).status_code == 200


def _issued(document: dict[str, Any], delta: timedelta) -> str:
    """The document with its ``issued_at`` moved by ``delta``, canonical and base64."""
    when = datetime.strptime(document["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ") + delta
    return signing_bytes_of({**document, "issued_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})


# name -> (how the signed bytes are made from the claim document, expected problem type)
ALTERATIONS: dict[str, tuple[Any, str]] = {
    "another provider": (lambda d: signing_bytes_of({**d, "provider": "acct_someoneelse"}), "altered-document"),
    "another asset id": (lambda d: signing_bytes_of({**d, "asset": "ast_someotherasset"}), "altered-document"),
    "another document type": (lambda d: signing_bytes_of({**d, "type": "holding-transfer"}), "altered-document"),
    "another market": (lambda d: signing_bytes_of({**d, "market": "other.example/log"}), "altered-document"),
    "another version": (lambda d: signing_bytes_of({**d, "v": 2}), "altered-document"),
    "version true, not 1": (lambda d: signing_bytes_of({**d, "v": True}), "altered-document"),
    "revision true, not 1": (lambda d: signing_bytes_of({**d, "commitment": {**d["commitment"], "revision": True}}),
                             "claim-not-current"),
    "another commitment": (lambda d: signing_bytes_of({**d, "commitment": {**d["commitment"], "sha256": "0" * 64}}),
                           "claim-not-current"),
    "another size": (lambda d: signing_bytes_of({**d, "commitment": {**d["commitment"], "size": 1}}),
                     "claim-not-current"),
    "another source": (lambda d: signing_bytes_of({**d, "source": "found it somewhere"}), "claim-not-current"),
    "rights out of order": (lambda d: signing_bytes_of({**d, "rights": ["use", "holding"]}), "altered-document"),
    "unknown right": (lambda d: signing_bytes_of({**d, "rights": ["holding", "ownership"]}), "altered-document"),
    "no rights": (lambda d: signing_bytes_of({**d, "rights": []}), "altered-document"),
    "issued in the future": (lambda d: _issued(d, timedelta(hours=2)),
                             "altered-document"),
    "issued_at not a time": (lambda d: signing_bytes_of({**d, "issued_at": "yesterday"}), "altered-document"),
    "issued 25 hours ago": (lambda d: _issued(d, -timedelta(hours=25)),
                            "stale-document"),
    "non-canonical spacing": (lambda d: base64.b64encode(json.dumps(d, indent=1).encode()).decode(),
                              "non-canonical-document"),
    "keys out of order": (lambda d: base64.b64encode(json.dumps(dict(reversed(list(d.items()))), separators=(",", ":"),
                                                                ensure_ascii=False).encode()).decode(),
                          "non-canonical-document"),
    "not base64": (lambda d: "{not base64}", "malformed-document"),
    "not JSON": (lambda d: base64.b64encode(b"not json at all").decode(), "malformed-document"),
    "a JSON array": (lambda d: base64.b64encode(b"[1,2,3]").decode(), "malformed-document"),
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
async def test_claim_with_altered_signing_bytes(client, parties: Parties, operator, alteration: str) -> None:
    """The provider signs the altered bytes with its own valid key: only the alteration is wrong."""
    p = await provider(client, parties)
    asset = await with_content(client, p)
    claim = await fetch_claim(client, p, asset["id"])
    make, kind = ALTERATIONS[alteration]
    altered = make(claim["claim"])
    assert altered != claim["signing_bytes"]
    signature = p.sign(altered) if kind != "malformed-document" else p.sign(claim["signing_bytes"])
    before = await Snapshot.take(client, asset["id"], operator)

    assert_problem(await post_claim(client, p, asset["id"], altered, signature=signature), 422, kind)
    await before.assert_unchanged()
    assert (await post_claim(client, p, asset["id"], claim["signing_bytes"])).status_code == 200


async def test_claim_for_another_asset_is_refused(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    mine = await with_content(client, p)
    other = await with_content(client, p)
    claim_of_other = await fetch_claim(client, p, other["id"])
    before = [await Snapshot.take(client, a["id"], operator) for a in (mine, other)]

    assert_problem(await post_claim(client, p, mine["id"], claim_of_other["signing_bytes"]), 422, "altered-document")
    for snapshot in before:
        await snapshot.assert_unchanged()
    # Posted where it belongs, the claim is good.
    assert (await post_claim(client, p, other["id"], claim_of_other["signing_bytes"])).status_code == 200


async def test_stale_claim_is_refused(databases, tmp_path) -> None:
    clock = FakeClock()
    async with own_app(databases, tmp_path, clock=clock) as app:
        client = app.client
        p = await provider(client, app.parties)
        stale = await with_content(client, p)
        fresh = await with_content(client, p)
        old_claim = await fetch_claim(client, p, stale["id"])

        clock.advance(timedelta(hours=25))
        before = await Snapshot.take(client, stale["id"], app.operator)
        assert_problem(await post_claim(client, p, stale["id"], old_claim["signing_bytes"]), 422, "stale-document")
        await before.assert_unchanged()

        # A claim fetched now is fresh again.
        new_claim = await fetch_claim(client, p, stale["id"])
        assert new_claim["claim"]["issued_at"] != old_claim["claim"]["issued_at"]
        assert (await post_claim(client, p, stale["id"], new_claim["signing_bytes"])).status_code == 200

        # Under 24 hours old is still acceptable.
        almost_a_day = await fetch_claim(client, p, fresh["id"])
        clock.advance(timedelta(hours=23))
        assert (await post_claim(client, p, fresh["id"], almost_a_day["signing_bytes"])).status_code == 200


async def test_claim_fetched_before_a_change_is_not_current(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)

    claim = await fetch_claim(client, p, asset["id"])
    await upload(client, p, asset["id"], os.urandom(300))
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await post_claim(client, p, asset["id"], claim["signing_bytes"]), 422, "claim-not-current")
    await before.assert_unchanged()

    claim = await fetch_claim(client, p, asset["id"])
    r = await client.patch(f"/v1/assets/{asset['id']}", json={"source": "bought from a partner"}, headers=p.auth)
    assert r.status_code == 200, r.text
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await post_claim(client, p, asset["id"], claim["signing_bytes"]), 422, "claim-not-current")
    await before.assert_unchanged()

    claim = await fetch_claim(client, p, asset["id"])
    assert claim["claim"]["source"] == "bought from a partner"
    assert (await post_claim(client, p, asset["id"], claim["signing_bytes"])).status_code == 200


async def test_core_data_is_refused(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    core = await with_content(client, p, grade="core")
    before = await Snapshot.take(client, core["id"], operator)
    assert_problem(await client.get(f"/v1/assets/{core['id']}/claim", headers=p.auth), 422, "core-data-refused")
    await before.assert_unchanged()

    # A claim fetched while the asset was "general" does not get core data through.
    asset = await with_content(client, p)
    claim = await fetch_claim(client, p, asset["id"])
    r = await client.patch(f"/v1/assets/{asset['id']}", json={"grade": "core"}, headers=p.auth)
    assert r.status_code == 200, r.text
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await post_claim(client, p, asset["id"], claim["signing_bytes"]), 422, "core-data-refused")
    await before.assert_unchanged()
    # The attempt is kept for the regulator.
    regulator = await parties.staff("regulator")
    r = await client.get("/v1/oversight/refusals", params={"kind": "core-data-refused"}, headers=regulator.auth)
    assert r.status_code == 200, r.text
    assert [x["asset"] for x in r.json()["items"] if x["account"]["id"] == p.id] == [asset["id"]]


async def test_identifiable_personal_information_needs_a_legal_basis(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p, personal_info="identifiable")
    assert asset["legal_basis"] is None
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/claim", headers=p.auth), 422, "legal-basis-required")
    await before.assert_unchanged()

    # Declared "none" when fetched, "identifiable" when posted: refused all the same.
    r = await client.patch(f"/v1/assets/{asset['id']}", json={"personal_info": "none"}, headers=p.auth)
    assert r.status_code == 200, r.text
    claim = await fetch_claim(client, p, asset["id"])
    r = await client.patch(f"/v1/assets/{asset['id']}", json={"personal_info": "identifiable"}, headers=p.auth)
    assert r.status_code == 200, r.text
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await post_claim(client, p, asset["id"], claim["signing_bytes"]), 422, "legal-basis-required")
    await before.assert_unchanged()

    basis = "consent of each data subject (PIPL art. 13)"
    r = await client.patch(f"/v1/assets/{asset['id']}", json={"legal_basis": basis}, headers=p.auth)
    assert r.status_code == 200, r.text
    r = await post_claim(client, p, asset["id"], claim["signing_bytes"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"
    assert r.json()["legal_basis"] == basis


async def test_claim_without_content(client, parties: Parties, operator, settings) -> None:
    p = await provider(client, parties)
    asset = await draft(client, p)
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/claim", headers=p.auth), 422, "no-content")

    # A well-formed claim built by hand for this asset, with a made-up commitment.
    document = {
        "type": "ownership-claim", "v": 1, "market": settings.ledger_origin, "asset": asset["id"], "provider": p.id,
        "commitment": {"sha256": "0" * 64, "size": 0, "merkle_root": "0" * 64, "chunk_size": 65536, "revision": 1},
        "rights": ["holding", "use", "operation"], "source": asset["source"],
        "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    assert_problem(await post_claim(client, p, asset["id"], signing_bytes_of(document)), 422, "no-content")
    await before.assert_unchanged()


async def test_claim_on_an_asset_not_in_draft(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    claim = await fetch_claim(client, p, asset["id"])
    assert (await post_claim(client, p, asset["id"], claim["signing_bytes"])).status_code == 200
    before = await Snapshot.take(client, asset["id"], operator)

    assert_problem(await client.get(f"/v1/assets/{asset['id']}/claim", headers=p.auth), 409)
    assert_problem(await post_claim(client, p, asset["id"], claim["signing_bytes"]), 409)
    await before.assert_unchanged()


# -- review -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "buyer", "another provider", "regulator"])
async def test_review_needs_the_operator(client, parties: Parties, operator, regulator, who: str) -> None:
    p = await provider(client, parties)
    asset = await submitted_asset(client, p)
    reviewer = {
        "owner": p.party,
        "buyer": await parties.verified(["buyer"]),
        "another provider": await parties.verified(["provider"]),
        "regulator": regulator,
    }[who]
    before = await Snapshot.take(client, asset["id"], operator)
    for decision in ({"decision": "approve"}, {"decision": "reject", "reason": "no"}):
        assert_problem(await client.post(f"/v1/assets/{asset['id']}/review", json=decision, headers=reviewer.auth),
                       403, "wrong-role")
    await before.assert_unchanged()


async def test_review_of_a_draft_is_409(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    before = await Snapshot.take(client, asset["id"], operator)
    for decision in ({"decision": "approve"}, {"decision": "reject", "reason": "incomplete"}):
        assert_problem(await client.post(f"/v1/assets/{asset['id']}/review", json=decision, headers=operator.auth), 409)
    await before.assert_unchanged()


@pytest.mark.parametrize("body", [
    {"decision": "maybe"},
    {"decision": "APPROVE"},
    {},
    {"decision": "reject"},
    {"decision": "reject", "reason": ""},
    {"decision": "approve", "override_conflict": True},
    {"decision": "approve", "colour": "green"},
], ids=["unknown decision", "upper case", "no decision", "reject without reason", "reject with empty reason",
        "override without reason", "unknown field"])
async def test_review_with_a_bad_body(client, parties: Parties, operator, body: dict[str, Any]) -> None:
    p = await provider(client, parties)
    asset = await submitted_asset(client, p)
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/review", json=body, headers=operator.auth), 422)
    await before.assert_unchanged()


async def test_rejection_is_final(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    claim = await fetch_claim(client, p, asset["id"])
    assert (await post_claim(client, p, asset["id"], claim["signing_bytes"])).status_code == 200

    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "reject", "reason": "source unproven"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.json()["registration_number"] is None
    assert r.json()["status_reason"] == "source unproven"
    # The public ledger commits to the reason without publishing it (docs/LEDGER.md §2).
    rejected = await last_entry(client, asset["id"], "asset.rejected")
    assert "reason" not in rejected["data"]
    detail = await salted_detail(client, rejected["data"])
    assert detail["reason"] == "source unproven" and detail["event"] == "asset.rejected"

    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/claim", headers=p.auth), 409)
    assert_problem(await post_claim(client, p, asset["id"], claim["signing_bytes"]), 409)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"},
                                     headers=operator.auth), 409)
    assert_problem(await client.patch(f"/v1/assets/{asset['id']}", json={"title": "again"}, headers=p.auth), 409)
    assert_problem(await client.put(f"/v1/assets/{asset['id']}/content", content=b"again", headers=p.auth), 409)
    await before.assert_unchanged()

    # Rejected assets stay out of public view.
    stranger = await parties.verified(["buyer"])
    assert_problem(await client.get(f"/v1/assets/{asset['id']}", headers=stranger.auth), 404)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}"), 404)
    assert (await read_asset(client, asset["id"], p))["status"] == "rejected"


# -- conflicting commitments ------------------------------------------------------------


async def test_conflicting_commitment_needs_an_override(client, parties: Parties, operator) -> None:
    first_owner, second_owner = await provider(client, parties), await provider(client, parties)
    content = os.urandom(5000)
    first = await registered_asset(client, first_owner, operator, content)
    second = await with_content(client, second_owner, content)

    # Another party's draft is nobody else's business.
    assert (await read_asset(client, first["id"], first_owner))["conflicts_with"] == []

    await submit(client, second_owner, second["id"])
    for viewer in (first_owner, operator):
        assert (await read_asset(client, first["id"], viewer))["conflicts_with"] == [second["id"]]
    for viewer in (second_owner, operator):
        assert (await read_asset(client, second["id"], viewer))["conflicts_with"] == [first["id"]]

    before = await Snapshot.take(client, second["id"], operator)
    body = assert_problem(await client.post(f"/v1/assets/{second['id']}/review", json={"decision": "approve"},
                                            headers=operator.auth), 409, "unresolved-conflict")
    assert body["conflicts_with"] == [first["id"]]
    review = f"/v1/assets/{second['id']}/review"
    assert_problem(await client.post(review, json={"decision": "approve", "reason": "fine"}, headers=operator.auth),
                   409, "unresolved-conflict")
    assert_problem(await client.post(review, json={"decision": "approve", "override_conflict": True},
                                     headers=operator.auth), 422)
    await before.assert_unchanged()
    assert "asset.approved" not in await entry_types(client, second["id"])

    reason = "both hold licences from the same public source"
    r = await client.post(review, json={"decision": "approve", "override_conflict": True, "reason": reason},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "registered"
    approved = await last_entry(client, second["id"], "asset.approved")
    assert approved["data"]["override_conflict"] is True
    assert (await salted_detail(client, approved["data"]))["reason"] == reason
    assert approved["data"]["conflicts_with"] == [first["id"]]
    assert (await read_asset(client, first["id"]))["status"] == "registered"


async def test_same_provider_same_bytes_is_not_a_conflict(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    content = os.urandom(4000)
    first = await registered_asset(client, p, operator, content)
    second = await submitted_asset(client, p, content)
    assert second["conflicts_with"] == []
    assert (await read_asset(client, first["id"], p))["conflicts_with"] == []
    r = await client.post(f"/v1/assets/{second['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "registered"
    assert "override_conflict" not in (await last_entry(client, second["id"], "asset.approved"))["data"]


async def test_a_conflict_clears_when_the_other_claim_is_rejected(client, parties: Parties, operator) -> None:
    a_owner, b_owner = await provider(client, parties), await provider(client, parties)
    content = os.urandom(3000)
    a = await submitted_asset(client, a_owner, content)
    b = await submitted_asset(client, b_owner, content)
    assert b["conflicts_with"] == [a["id"]]
    assert (await read_asset(client, a["id"], a_owner))["conflicts_with"] == [b["id"]]

    # Two pending claims on the same bytes block each other.
    before = await Snapshot.take(client, a["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{a['id']}/review", json={"decision": "approve"},
                                     headers=operator.auth), 409, "unresolved-conflict")
    await before.assert_unchanged()

    r = await client.post(f"/v1/assets/{b['id']}/review", json={"decision": "reject", "reason": "copied"},
                          headers=operator.auth)
    assert r.status_code == 200, r.text
    assert (await read_asset(client, a["id"], a_owner))["conflicts_with"] == []
    r = await client.post(f"/v1/assets/{a['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "registered"


async def test_registered_content_still_conflicts_after_the_holder_uploads_a_revision(
    client, parties: Parties, operator
) -> None:
    """The registered revision's bytes stay registered while a new revision is only uploaded."""
    holder, copier = await provider(client, parties), await provider(client, parties)
    content = os.urandom(2000)
    first = await registered_asset(client, holder, operator, content)
    await upload(client, holder, first["id"], os.urandom(2000))  # a change in the making, not yet claimed
    assert (await read_asset(client, first["id"]))["status"] == "registered"

    copy = await submitted_asset(client, copier, content)
    assert copy["conflicts_with"] == [first["id"]]
    before = await Snapshot.take(client, copy["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{copy['id']}/review", json={"decision": "approve"},
                                     headers=operator.auth), 409, "unresolved-conflict")
    await before.assert_unchanged()


# -- objections ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def noticed(databases, tmp_path_factory) -> Any:
    """An app with a 10-day public notice."""
    async with own_app(databases, tmp_path_factory.mktemp("notice"), notice_period="10d") as app:
        yield app


async def in_public_notice(app: Any, p: Signer) -> dict[str, Any]:
    asset = await submitted_asset(app.client, p)
    r = await app.client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"},
                              headers=app.operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "public_notice"
    return r.json()


async def test_objection_rules(noticed) -> None:
    client, parties, op = noticed.client, noticed.parties, noticed.operator
    p = await provider(client, parties)
    asset = await in_public_notice(noticed, p)
    objector = await parties.verified(["buyer"])
    unverified = await parties.sign_up(["buyer"])
    regulator = await parties.staff("regulator")

    before = await Snapshot.take(client, asset["id"], op)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/objections", json={"reason": "ours"},
                                     headers=unverified.auth), 403, "account-not-verified")
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/objections", json={"evidence": "no reason"},
                                     headers=objector.auth), 422)
    await before.assert_unchanged()

    r = await client.post(f"/v1/assets/{asset['id']}/objections",
                          json={"reason": "we collected it", "evidence": "contract"}, headers=objector.auth)
    assert r.status_code == 201, r.text
    objection = r.json()
    assert objection["status"] == "open" and objection["id"].startswith("obj_")

    before = await Snapshot.take(client, asset["id"], op)
    resolution = f"/v1/objections/{objection['id']}/resolution"
    for who in (p.party, objector, regulator):
        assert_problem(await client.post(resolution, json={"decision": "uphold", "reason": "x"}, headers=who.auth),
                       403, "wrong-role")
    assert_problem(await client.post("/v1/objections/obj_doesnotexist/resolution",
                                     json={"decision": "uphold", "reason": "x"}, headers=op.auth), 404)
    for body in ({"decision": "maybe", "reason": "x"}, {"decision": "uphold"}, {"decision": "uphold", "reason": ""}):
        assert_problem(await client.post(resolution, json=body, headers=op.auth), 422)
    await before.assert_unchanged()
    r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=op.auth)
    assert [o["status"] for o in r.json()["items"]] == ["open"] and r.json()["next_cursor"] is None

    # The holder and staff see every objection; anyone else only its own.
    for viewer, expected in ((p, [objection["id"]]), (regulator, [objection["id"]]), (objector, [objection["id"]]),
                             (await parties.verified(["buyer"]), [])):
        r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=viewer.auth)
        assert r.status_code == 200, r.text
        assert [o["id"] for o in r.json()["items"]] == expected


async def test_objection_on_an_asset_not_in_public_notice(noticed) -> None:
    client, parties, op = noticed.client, noticed.parties, noticed.operator
    p = await provider(client, parties)
    objector = await parties.verified(["buyer"])
    pending = await submitted_asset(client, p)
    before = await Snapshot.take(client, pending["id"], op)
    # Staff may see the pending asset, but staff do not object (they act on their own).
    assert_problem(await client.post(f"/v1/assets/{pending['id']}/objections", json={"reason": "too early"},
                                     headers=op.auth), 403, "staff-cannot-object")
    # A stranger does not even see it.
    assert_problem(await client.post(f"/v1/assets/{pending['id']}/objections", json={"reason": "too early"},
                                     headers=objector.auth), 404)
    await before.assert_unchanged()


async def test_objection_on_a_registered_asset_is_409(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await registered_asset(client, p, operator)
    objector = await parties.verified(["buyer"])
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/objections", json={"reason": "too late"},
                                     headers=objector.auth), 409)
    await before.assert_unchanged()
    r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=p.auth)
    assert r.status_code == 200 and r.json()["items"] == []


# -- visibility and object-level authorization -------------------------------------------


def asset_routes(asset_id: str, to: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that takes an asset id, but review, with a well-formed request."""
    signed = {"signing_bytes": base64.b64encode(b"{}").decode(), "key_id": "key_whatever",
              "signature": base64.b64encode(bytes(64)).decode()}
    base = f"/v1/assets/{asset_id}"
    return [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"title": "mine now"}}),
        ("PUT", f"{base}/content", {"content": b"other bytes"}),
        ("GET", f"{base}/claim", {}),
        ("POST", f"{base}/claim", {"json": signed}),
        ("POST", f"{base}/objections", {"json": {"reason": "it is mine"}}),
        ("GET", f"{base}/objections", {}),
        ("GET", f"{base}/certificate", {}),
        ("GET", f"{base}/history", {}),
        ("POST", f"{base}/cancellation", {"json": {"reason": "gone"}}),
        ("GET", f"{base}/transfer-document", {"params": {"to": to}}),
        ("POST", f"{base}/transfers", {"json": signed}),
    ]


@pytest.mark.parametrize("status", ["draft", "submitted", "rejected"])
@pytest.mark.parametrize("stranger_kind", ["buyer", "provider"])
async def test_strangers_get_404_on_every_route_of_a_hidden_asset(
    client, parties: Parties, operator, status: str, stranger_kind: str
) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    if status != "draft":
        await submit(client, p, asset["id"])
    if status == "rejected":
        r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "reject", "reason": "no"},
                              headers=operator.auth)
        assert r.status_code == 200, r.text
    stranger = await parties.verified([stranger_kind])
    before = await Snapshot.take(client, asset["id"], operator)
    assert before.asset["status"] == status

    missing = "ast_doesnotexist0000000000"
    for (method, path, kwargs), (_, missing_path, _) in zip(asset_routes(asset["id"], stranger.id),
                                                             asset_routes(missing, stranger.id), strict=False):
        r = await client.request(method, path, headers=stranger.auth, **kwargs)
        body = assert_problem(r, 404, "not-found")
        # Indistinguishable from an asset that does not exist.
        absent = assert_problem(await client.request(method, missing_path, headers=stranger.auth, **kwargs), 404)
        assert (body["type"], body["title"]) == (absent["type"], absent["title"]), (method, path)
        assert p.id not in json.dumps(body)
    # Review is an operator's act: the role is refused before the asset is looked at.
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"},
                                     headers=stranger.auth), 403, "wrong-role")
    await before.assert_unchanged()
    assert asset["id"] not in await list_ids(client, stranger, provider=p.id)


HOLDER_ONLY = {("PATCH", ""), ("PUT", "/content"), ("GET", "/claim"), ("POST", "/claim"), ("POST", "/cancellation"),
               ("GET", "/transfer-document"), ("POST", "/transfers")}


@pytest.mark.parametrize("who", ["buyer", "another provider", "operator", "regulator"])
async def test_non_holders_cannot_write_a_public_asset(client, parties: Parties, operator, regulator, who: str) -> None:
    p = await provider(client, parties)
    other_provider = await parties.verified(["provider"])
    asset = await registered_asset(client, p, operator)
    actor = {"buyer": await parties.verified(["buyer"]), "another provider": other_provider,
             "operator": operator, "regulator": regulator}[who]
    before = await Snapshot.take(client, asset["id"], operator)

    base = f"/v1/assets/{asset['id']}"
    for method, path, kwargs in asset_routes(asset["id"], other_provider.id):
        r = await client.request(method, path, headers=actor.auth, **kwargs)
        if (method, path[len(base):]) in HOLDER_ONLY:
            assert_problem(r, 403, "not-owner")
        elif path.endswith("/objections") and method == "POST":
            if who in ("operator", "regulator"):
                assert_problem(r, 403, "staff-cannot-object")
            else:
                assert_problem(r, 409)  # readable, but not in public notice any more
        else:
            assert r.status_code == 200, (method, path, r.text)
    await before.assert_unchanged()


async def test_operator_and_regulator_read_drafts(client, parties: Parties, operator, regulator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    for staff in (operator, regulator):
        assert (await read_asset(client, asset["id"], staff))["status"] == "draft"
        r = await client.get(f"/v1/assets/{asset['id']}/history", headers=staff.auth)
        assert r.status_code == 200, r.text
        assert [i["entry"]["type"] for i in r.json()["items"]] == ["asset.created", "asset.content_uploaded"]
        r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=staff.auth)
        assert r.status_code == 200 and r.json()["items"] == []
        assert_problem(await client.get(f"/v1/assets/{asset['id']}/certificate", headers=staff.auth), 409)
        assert await list_ids(client, staff, provider=p.id) == [asset["id"]]
        assert asset["id"] in await list_ids(client, staff, provider=p.id, status="draft")


async def test_anonymous_callers(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    hidden = await with_content(client, p)
    public = await registered_asset(client, p, operator)
    before = [await Snapshot.take(client, a["id"], operator) for a in (hidden, public)]

    for asset in (hidden, public):
        for method, path, kwargs in asset_routes(asset["id"], p.id):
            r = await client.request(method, path, **kwargs)
            if method == "GET" and not path.endswith(("/claim", "/objections", "/transfer-document")):
                if asset is hidden:
                    assert_problem(r, 404, "not-found")
                else:
                    assert r.status_code == 200, (method, path, r.text)
            else:
                assert_problem(r, 401)
            # A bad token is 401 everywhere, even where anonymous reading is allowed.
            r = await client.request(method, path, headers={"Authorization": "Bearer mkt_nosuchtoken"}, **kwargs)
            assert_problem(r, 401)
        assert_problem(await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}), 401)
    for snapshot in before:
        await snapshot.assert_unchanged()
    assert await list_ids(client, None, provider=p.id) == [public["id"]]


async def test_listing_shows_strangers_only_public_assets_and_their_own(client, parties: Parties, operator) -> None:
    owner, stranger = await provider(client, parties), await provider(client, parties)
    hidden = [await draft(client, owner), await submitted_asset(client, owner)]
    public = await registered_asset(client, owner, operator)
    mine = await draft(client, stranger)

    assert await list_ids(client, stranger, provider=owner.id) == [public["id"]]
    everything = sorted([a["id"] for a in hidden] + [public["id"]])
    assert sorted(await list_ids(client, owner, provider=owner.id)) == everything
    assert sorted(await list_ids(client, operator, provider=owner.id)) == everything

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await client.get("/v1/assets", params={"limit": 500, **({"cursor": cursor} if cursor else {})},
                             headers=stranger.auth)
        assert r.status_code == 200, r.text
        seen += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    # Public: in notice, registered (also with a change under review), revoked, cancelled.
    assert all(a["status"] in PUBLIC or a["registered_revision"] > 0 or a["provider_id"] == stranger.id
               for a in seen)
    ids = [a["id"] for a in seen]
    assert mine["id"] in ids and public["id"] in ids
    assert not {a["id"] for a in hidden} & set(ids)
    # Asking for drafts gives a stranger its own drafts only.
    drafts = await list_ids(client, stranger, status="draft")
    assert drafts == [mine["id"]]


async def test_listing_filters(client, parties: Parties, operator) -> None:
    owner = await provider(client, parties)
    general = await draft(client, owner)
    important = await draft(client, owner, grade="important")
    registered = await registered_asset(client, owner, operator)

    drafts = sorted([general["id"], important["id"]])
    assert sorted(await list_ids(client, owner, provider=owner.id, status="draft")) == drafts
    assert await list_ids(client, owner, provider=owner.id, grade="important") == [important["id"]]
    assert await list_ids(client, owner, provider=owner.id, status="registered") == [registered["id"]]
    assert await list_ids(client, owner, provider=owner.id, status="registered", grade="important") == []
    assert await list_ids(client, None, provider=owner.id, grade="general") == [registered["id"]]
    r = await client.get("/v1/assets", params={"status": "registered"})
    assert r.status_code == 200 and all(a["status"] == "registered" for a in r.json()["items"])
    assert_problem(await client.get("/v1/assets", params={"status": "lost"}, headers=owner.auth), 422)


async def test_listing_paginates(client, parties: Parties) -> None:
    owner = await provider(client, parties)
    created = [(await draft(client, owner, title=f"part {i}"))["id"] for i in range(5)]
    pages: list[list[str]] = []
    cursor = None
    while True:
        params = {"provider": owner.id, "limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/assets", params=params, headers=owner.auth)
        assert r.status_code == 200, r.text
        pages.append([a["id"] for a in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10
    assert [len(page) for page in pages] == [2, 2, 1]
    flat = [i for page in pages for i in page]
    assert len(set(flat)) == 5 and set(flat) == set(created)

    for bad in ({"limit": 0}, {"limit": 501}, {"cursor": "!!not a cursor!!"}):
        assert_problem(await client.get("/v1/assets", params=bad, headers=owner.auth), 422)


# -- editing drafts --------------------------------------------------------------------------


async def test_patch_rules(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await with_content(client, p)
    changes = {"title": "深圳地铁客流 2026", "tags": ["metro"], "legal_basis": "contract with the operator",
               "export_allowed": True, "grade": "important"}
    r = await client.patch(f"/v1/assets/{asset['id']}", json=changes, headers=p.auth)
    assert r.status_code == 200, r.text
    for name, value in changes.items():
        assert r.json()[name] == value
    stored = await read_asset(client, asset["id"], p)
    for name, value in changes.items():
        assert stored[name] == value
    assert stored["description"] == ASSET["description"]  # untouched fields stay
    assert (await entry_types(client, asset["id"]))[-1] == "asset.updated"

    before = await Snapshot.take(client, asset["id"], operator)
    for body in ({}, {"colour": "red"}, {"title": None}, {"grade": None}, {"tags": None}, {"title": ""},
                 {"grade": "secret"}, {"personal_info": "some"}, {"title": "ok", "owner": "me"}):
        assert_problem(await client.patch(f"/v1/assets/{asset['id']}", json=body, headers=p.auth), 422)
    await before.assert_unchanged()

    # The legal basis may be withdrawn while in draft.
    r = await client.patch(f"/v1/assets/{asset['id']}", json={"legal_basis": None}, headers=p.auth)
    assert r.status_code == 200 and r.json()["legal_basis"] is None

    await submit(client, p, asset["id"])
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.patch(f"/v1/assets/{asset['id']}", json={"title": "late"}, headers=p.auth), 409)
    await before.assert_unchanged()


# -- content ---------------------------------------------------------------------------------


async def test_upload_over_the_limit(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, max_upload_bytes=1000) as app:
        client = app.client
        p = await provider(client, app.parties)
        asset = await draft(client, p)
        first = await upload(client, p, asset["id"], os.urandom(1000))  # exactly the limit
        assert first["size"] == 1000
        before = await Snapshot.take(client, asset["id"], app.operator)

        r = await client.put(f"/v1/assets/{asset['id']}/content", content=os.urandom(1001), headers=p.auth)
        assert_problem(r, 413, "too-large")
        await before.assert_unchanged()
        # A body longer than its declared length is cut off while it streams.
        r = await client.put(f"/v1/assets/{asset['id']}/content", content=os.urandom(5000),
                             headers={**p.auth, "Content-Length": "500"})
        assert_problem(r, 413, "too-large")
        await before.assert_unchanged()

        claim = await fetch_claim(client, p, asset["id"])
        assert claim["claim"]["commitment"] == first  # the upload answer is the commitment
        assert (await post_claim(client, p, asset["id"], claim["signing_bytes"])).status_code == 200


async def test_upload_while_submitted_or_by_a_stranger(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    pending = await submitted_asset(client, p)
    before = await Snapshot.take(client, pending["id"], operator)
    assert_problem(await client.put(f"/v1/assets/{pending['id']}/content", content=b"late", headers=p.auth), 409)
    await before.assert_unchanged()

    asset = await with_content(client, p)
    stranger = await provider(client, parties)
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.put(f"/v1/assets/{asset['id']}/content", content=b"mine", headers=stranger.auth),
                   404, "not-found")
    await before.assert_unchanged()


# -- certificates ----------------------------------------------------------------------------


async def test_certificate_needs_a_registration(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await submitted_asset(client, p)
    for viewer in (p, operator):
        assert_problem(await client.get(f"/v1/assets/{asset['id']}/certificate", headers=viewer.auth), 409)


async def test_certificate_verifies(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await registered_asset(client, p, operator)
    await wait_integrated(client, f"asset:{asset['id']}")
    bundle = (await client.get(f"/v1/assets/{asset['id']}/certificate")).json()
    vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
    assert verify_bundle(bundle, vkey).status == "valid"
    assert bundle["document"]["holder"]["id"] == p.id
    assert bundle["document"]["registration_number"] == asset["registration_number"]
    assert bundle["document"]["commitment"] == asset["commitment"]


async def test_certificate_before_integration_is_pending(databases, tmp_path) -> None:
    """With nothing integrating the ledger, the certificate carries a pending entry."""
    async with own_app(databases, tmp_path, background_tasks=False) as app:
        client = app.client
        p = await provider(client, app.parties)
        asset = await registered_asset(client, p, app.operator)
        assert all(i["index"] is None for i in await ledger_items(client, asset["id"]))
        r = await client.get(f"/v1/assets/{asset['id']}/certificate")
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert bundle["ledger"]["index"] is None
        assert bundle["document"]["registration_number"] == asset["registration_number"]
        vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
        assert verify_bundle(bundle, vkey).status == "pending"
        forged = json.loads(json.dumps(bundle))
        forged["document"]["holder"]["id"] = "acct_someoneelse"
        assert verify_bundle(forged, vkey).status not in ("valid", "pending")


# -- cancellation ----------------------------------------------------------------------------


async def test_cancellation(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await registered_asset(client, p, operator)
    stranger = await provider(client, parties)
    before = await Snapshot.take(client, asset["id"], operator)
    for who in (stranger, operator):
        assert_problem(await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "x"},
                                         headers=who.auth), 403, "not-owner")
    for body in ({}, {"reason": ""}):
        assert_problem(await client.post(f"/v1/assets/{asset['id']}/cancellation", json=body, headers=p.auth), 422)
    await before.assert_unchanged()

    r = await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "we stopped collecting"},
                          headers=p.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert (await read_asset(client, asset["id"]))["status"] == "cancelled"  # public, for the record
    cancelled = (await last_entry(client, asset["id"], "asset.cancelled"))["data"]
    assert set(cancelled) == {"reason_salted_sha256"}
    assert (await salted_detail(client, cancelled))["reason"] == "we stopped collecting"

    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "again"},
                                     headers=p.auth), 409)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/certificate"), 409)
    await before.assert_unchanged()

    # A draft cannot be cancelled: there is no registration.
    a_draft = await draft(client, p)
    assert_problem(await client.post(f"/v1/assets/{a_draft['id']}/cancellation", json={"reason": "x"},
                                     headers=p.auth), 409)


# -- transfer of the holding right -------------------------------------------------------



async def test_transfer_of_the_holding_right(client, parties: Parties, operator) -> None:
    old, new = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, old, operator)

    r = await client.get(f"/v1/assets/{asset['id']}/transfer-document", params={"to": new.id}, headers=old.auth)
    assert r.status_code == 200, r.text
    document = r.json()["document"]
    assert (document["asset"], document["from"], document["to"], document["right"]) == (asset["id"], old.id, new.id,
                                                                                        "holding")
    assert document["registration_number"] == asset["registration_number"]
    assert signing_bytes_of(document) == r.json()["signing_bytes"]

    transfer, signing_bytes = await propose(client, old, asset["id"], new.id)
    assert transfer["status"] == "proposed" and transfer["to_id"] == new.id
    assert (await read_asset(client, asset["id"]))["provider_id"] == old.id  # not before the countersignature

    r = await client.post(f"/v1/transfers/{transfer['id']}/acceptance", headers=new.auth,
                          json={"key_id": new.key_id, "signature": new.sign(signing_bytes)})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"

    after = await read_asset(client, asset["id"])
    assert after["provider_id"] == new.id
    assert after["status"] == "registered" and after["registration_number"] == asset["registration_number"]
    changed = await last_entry(client, asset["id"], "asset.holder_changed")
    assert (changed["data"]["from"], changed["data"]["to"]) == (old.id, new.id)
    assert {s["account"] for s in changed["data"]["signatures"]} == {old.id, new.id}

    await wait_integrated(client, f"asset:{asset['id']}")
    bundle = (await client.get(f"/v1/assets/{asset['id']}/certificate")).json()
    assert bundle["document"]["holder"]["id"] == new.id
    vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
    assert verify_bundle(bundle, vkey).status == "valid"

    # The old holder has no say any more; the new one has.
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "mine"},
                                     headers=old.auth), 403, "not-owner")
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/transfer-document", params={"to": new.id},
                                    headers=old.auth), 403, "not-owner")
    await before.assert_unchanged()
    r = await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "retired"}, headers=new.auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_transfer_to_a_bad_target(client, parties: Parties, operator) -> None:
    holder, good = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    targets = {
        "unverified provider": (await parties.sign_up(["provider"])).id,
        "buyer": (await parties.verified(["buyer"])).id,
        "regulator": (await parties.staff("regulator")).id,
        "oneself": holder.id,
        "nobody": "acct_doesnotexist",
    }
    before = await Snapshot.take(client, asset["id"], operator)
    for _name, to in targets.items():
        r = await client.get(f"/v1/assets/{asset['id']}/transfer-document", params={"to": to}, headers=holder.auth)
        assert_problem(r, 422, "bad-transfer-target")

    # A document to a good target, rewritten to a bad one and signed: refused all the same.
    r = await client.get(f"/v1/assets/{asset['id']}/transfer-document", params={"to": good.id}, headers=holder.auth)
    document = r.json()["document"]
    for name in ("unverified provider", "buyer", "nobody"):
        sb = signing_bytes_of({**document, "to": targets[name]})
        r = await client.post(f"/v1/assets/{asset['id']}/transfers", headers=holder.auth,
                              json={"signing_bytes": sb, "key_id": holder.key_id, "signature": holder.sign(sb)})
        assert_problem(r, 422, "bad-transfer-target")
    await before.assert_unchanged()


async def test_transfer_acceptance_rules(client, parties: Parties, operator) -> None:
    holder, recipient, stranger = (await provider(client, parties), await provider(client, parties),
                                   await provider(client, parties))
    asset = await registered_asset(client, holder, operator)
    transfer, signing_bytes = await propose(client, holder, asset["id"], recipient.id)
    acceptance = f"/v1/transfers/{transfer['id']}/acceptance"
    before = await Snapshot.take(client, asset["id"], operator)

    r = await client.post(acceptance, headers=stranger.auth,
                          json={"key_id": stranger.key_id, "signature": stranger.sign(signing_bytes)})
    assert_problem(r, 404)
    for who in (holder, operator):
        r = await client.post(acceptance, headers=who.auth,
                              json={"key_id": holder.key_id, "signature": holder.sign(signing_bytes)})
        assert_problem(r, 403)
    r = await client.post(acceptance, headers=recipient.auth,
                          json={"key_id": recipient.key_id,
                                "signature": recipient.sign(base64.b64encode(b"other bytes").decode())})
    assert_problem(r, 422, "bad-signature")
    r = await client.post(acceptance, headers=recipient.auth,
                          json={"key_id": holder.key_id, "signature": holder.sign(signing_bytes)})
    assert_problem(r, 422, "unknown-key")
    good = {"key_id": recipient.key_id, "signature": recipient.sign(signing_bytes)}
    assert_problem(await client.post("/v1/transfers/trf_doesnotexist/acceptance", headers=recipient.auth, json=good),
                   404)
    await before.assert_unchanged()

    r = await client.post(acceptance, headers=recipient.auth, json=good)
    assert r.status_code == 200, r.text
    before = await Snapshot.take(client, asset["id"], operator)
    assert before.asset["provider_id"] == recipient.id
    assert_problem(await client.post(acceptance, headers=recipient.auth, json=good), 409)
    await before.assert_unchanged()


async def test_transfer_of_content_changed_since_the_proposal_is_refused(client, parties: Parties, operator) -> None:
    """The holder's document names the registered content; a change registered before
    the receiver accepts makes that document stale."""
    holder, recipient = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    transfer, signing_bytes = await propose(client, holder, asset["id"], recipient.id)
    await upload(client, holder, asset["id"], os.urandom(1500))
    await submit(client, holder, asset["id"])
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200 and r.json()["status"] == "registered" and r.json()["registered_revision"] == 2
    before = await Snapshot.take(client, asset["id"], operator)

    # The registered change voided the proposal (its document names the old content).
    r = await client.get(f"/v1/transfers/{transfer['id']}", headers=recipient.auth)
    assert r.status_code == 200 and r.json()["status"] == "void", r.text
    r = await client.post(f"/v1/transfers/{transfer['id']}/acceptance", headers=recipient.auth,
                          json={"key_id": recipient.key_id, "signature": recipient.sign(signing_bytes)})
    assert_problem(r, 409, "invalid-transition")
    await before.assert_unchanged()
    assert before.asset["provider_id"] == holder.id


async def test_transfer_document_must_state_the_holding_right(client, parties: Parties, operator) -> None:
    """The market moves the holding right only on a document that says so, signed as handed out."""
    holder, to = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    r = await client.get(f"/v1/assets/{asset['id']}/transfer-document", params={"to": to.id}, headers=holder.auth)
    assert r.status_code == 200, r.text
    document = r.json()["document"]
    before = await Snapshot.take(client, asset["id"], operator)
    for changed in ({"asset": "ast_someotherasset"}, {"from": to.id}, {"registration_number": "DR-2000-000001"},
                    {"commitment": {**document["commitment"], "sha256": "0" * 64}},
                    {"right": "use"}, {"right": "operation"}):
        sb = signing_bytes_of({**document, **changed})
        r = await client.post(f"/v1/assets/{asset['id']}/transfers", headers=holder.auth,
                              json={"signing_bytes": sb, "key_id": holder.key_id, "signature": holder.sign(sb)})
        assert_problem(r, 422, "altered-document")
    await before.assert_unchanged()


async def test_a_proposal_does_not_survive_cancellation(client, parties: Parties, operator) -> None:
    holder, recipient = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    transfer, signing_bytes = await propose(client, holder, asset["id"], recipient.id)
    r = await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "retired"}, headers=holder.auth)
    assert r.status_code == 200, r.text
    before = await Snapshot.take(client, asset["id"], operator)
    r = await client.post(f"/v1/transfers/{transfer['id']}/acceptance", headers=recipient.auth,
                          json={"key_id": recipient.key_id, "signature": recipient.sign(signing_bytes)})
    assert_problem(r, 409)
    await before.assert_unchanged()
    assert before.asset["provider_id"] == holder.id and before.asset["status"] == "cancelled"


# -- idempotent creation ---------------------------------------------------------------------


async def test_idempotent_asset_creation(client, parties: Parties) -> None:
    p = await provider(client, parties)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/assets", json=ASSET, headers={**p.auth, **key})
    assert first.status_code == 201, first.text
    again = await client.post("/v1/assets", json=ASSET, headers={**p.auth, **key})
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert await list_ids(client, p, provider=p.id) == [first.json()["id"]]

    other = await client.post("/v1/assets", json={**ASSET, "title": "another"}, headers={**p.auth, **key})
    assert_problem(other, 409)
    assert await list_ids(client, p, provider=p.id) == [first.json()["id"]]
    assert await entry_types(client, first.json()["id"]) == ["asset.created"]

    # The key is the caller's own: another provider using it gets its own asset.
    q = await provider(client, parties)
    theirs = await client.post("/v1/assets", json=ASSET, headers={**q.auth, **key})
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != first.json()["id"] and theirs.json()["provider_id"] == q.id

