"""Registry input handling over HTTP: who may call, what a malformed body, query or path
gets (a 4xx problem, never a 500), and that a refused request changes nothing.

The rules of the registry (claims, review, conflicts, transfers) are in
``test_registry_rules.py``; this file is about the edges of the inputs.
"""

import base64
import os
from typing import Any

import pytest

from tests.conftest import Parties, Party, assert_problem, walk_ids
from tests.registry_support import (
    ASSET,
    Signer,
    Snapshot,
    add_key,
    draft,
    own_app,
    provider,
    registered_asset,
    submit,
    upload,
)

VALIDATION = "validation-error"


async def asset_ids(client: Any, viewer: Party | Signer, **params: Any) -> list[str]:
    """Every asset id the viewer is shown, walking all pages."""
    return await walk_ids(client, "/v1/assets", viewer.auth, **params)


async def submitted(client: Any, p: Signer) -> dict[str, Any]:
    asset = await draft(client, p)
    await upload(client, p, asset["id"], os.urandom(300))
    return await submit(client, p, asset["id"])


# -- POST /v1/assets: who may create a draft ---------------------------------------------


async def test_create_asset_anonymous_is_401(client, operator) -> None:
    before = await asset_ids(client, operator)
    assert_problem(await client.post("/v1/assets", json=ASSET), 401, "missing-token")
    assert_problem(await client.post("/v1/assets", json=ASSET, headers={"Authorization": "Bearer mkt_nonsense"}),
                   401, "bad-token")
    assert await asset_ids(client, operator) == before


@pytest.mark.parametrize(("who", "kind"), [
    ("verified buyer", "wrong-role"),
    ("pending provider", "account-not-verified"),
    ("regulator", "wrong-role"),
])
async def test_create_asset_needs_a_verified_provider(client, parties: Parties, operator, regulator, who: str,
                                                      kind: str) -> None:
    caller = {
        "verified buyer": await parties.verified(["buyer"]),
        "pending provider": await parties.sign_up(["provider"]),
        "regulator": regulator,
    }[who]
    before_all = await asset_ids(client, operator)
    assert_problem(await client.post("/v1/assets", json=ASSET, headers=caller.auth), 403, kind)
    assert await asset_ids(client, caller, provider=caller.id) == []
    assert await asset_ids(client, operator) == before_all


# -- POST /v1/assets: malformed bodies ---------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in ASSET.items() if k != key}


BAD_ASSETS: dict[str, Any] = {
    "missing title": _without("title"),
    "missing grade": _without("grade"),
    "missing personal_info": _without("personal_info"),
    "blank title": {**ASSET, "title": "   "},
    "null title": {**ASSET, "title": None},
    "unknown grade": {**ASSET, "grade": "secret"},
    "grade in upper case": {**ASSET, "grade": "GENERAL"},
    "unknown personal_info": {**ASSET, "personal_info": "pseudonymous"},
    "title over 200": {**ASSET, "title": "t" * 201},
    "Chinese title over 200": {**ASSET, "title": "数" * 201},
    "description over 10000": {**ASSET, "description": "d" * 10_001},
    "source over 2000": {**ASSET, "source": "s" * 2001},
    "legal_basis over 2000": {**ASSET, "legal_basis": "l" * 2001},
    "empty legal_basis": {**ASSET, "legal_basis": ""},
    "category over 100": {**ASSET, "category": "c" * 101},
    "category not of the list": {**ASSET, "category": "tourism2"},
    "category a name, not an id": {**ASSET, "category": "交通运输"},
    "category in upper case": {**ASSET, "category": "TRANSPORT"},
    "category null": {**ASSET, "category": None},
    "format over 100": {**ASSET, "format": "f" * 101},
    "tags a string": {**ASSET, "tags": "bus"},
    "tags an object": {**ASSET, "tags": {"bus": True}},
    "21 tags": {**ASSET, "tags": [f"t{i}" for i in range(21)]},
    "a tag over 50": {**ASSET, "tags": ["x" * 51]},
    "an empty tag": {**ASSET, "tags": ["bus", ""]},
    "a tag not a string": {**ASSET, "tags": ["bus", 7]},
    "export_allowed 'yes'": {**ASSET, "export_allowed": "yes"},
    "export_allowed 'true'": {**ASSET, "export_allowed": "true"},
    "export_allowed 1": {**ASSET, "export_allowed": 1},
    "export_allowed 0": {**ASSET, "export_allowed": 0},
    "title a number": {**ASSET, "title": 12345},
    "unknown field": {**ASSET, "colour": "green"},
    "provider_id smuggled in": {**ASSET, "provider_id": "acct_someoneelse"},
    "status smuggled in": {**ASSET, "status": "registered"},
    "a JSON array": [ASSET],
    "a JSON string": "title",
    "JSON null": None,
}


@pytest.mark.parametrize("case", list(BAD_ASSETS))
async def test_create_asset_with_a_bad_body(client, parties: Parties, operator, case: str) -> None:
    p = await provider(client, parties)
    existing = await draft(client, p)
    before_all = await asset_ids(client, operator)

    r = await client.post("/v1/assets", json=BAD_ASSETS[case], headers=p.auth)
    assert_problem(r, 422, VALIDATION)
    assert await asset_ids(client, p, provider=p.id) == [existing["id"]]
    assert await asset_ids(client, operator) == before_all


@pytest.mark.parametrize("content", [
    pytest.param(b"{not json", id="not JSON"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe", id="not UTF-8"),
    pytest.param(b'{"title": "x",}', id="trailing comma"),
    pytest.param(b'{"title": "x"', id="truncated"),
])
async def test_create_asset_with_a_body_that_is_not_json(client, parties: Parties, operator, content: bytes) -> None:
    p = await provider(client, parties)
    before_all = await asset_ids(client, operator)
    r = await client.post("/v1/assets", content=content, headers={**p.auth, "content-type": "application/json"})
    assert_problem(r, 422, VALIDATION)
    assert await asset_ids(client, p, provider=p.id) == []
    assert await asset_ids(client, operator) == before_all


async def test_create_asset_at_the_limits_is_accepted(client, parties: Parties) -> None:
    """The limits refused above are the precise ones: one character less passes."""
    p = await provider(client, parties)
    body = {**ASSET, "title": "数" * 200, "description": "d" * 10_000, "source": "s" * 2000,
            "legal_basis": "l" * 2000, "category": "enterprise_credit", "format": "f" * 100,
            "tags": ["x" * 50] + [f"t{i}" for i in range(19)], "export_allowed": True}
    r = await client.post("/v1/assets", json=body, headers=p.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "draft" and created["title"] == "数" * 200 and len(created["tags"]) == 20
    assert created["export_allowed"] is True
    assert await asset_ids(client, p, provider=p.id) == [created["id"]]


# -- GET /v1/assets: bad filters -----------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"grade": "secret"},
    {"grade": "GENERAL"},
    {"status": "archived"},
    {"limit": 0},
    {"limit": 501},
    {"limit": "ten"},
    {"category": "交通"},
], ids=["unknown grade", "upper-case grade", "unknown status", "limit 0", "limit 501", "limit not a number",
        "unknown category"])
async def test_list_assets_with_a_bad_filter(client, parties: Parties, params: dict[str, Any]) -> None:
    p = await provider(client, parties)
    await draft(client, p)
    assert_problem(await client.get("/v1/assets", params=params, headers=p.auth), 422)
    assert_problem(await client.get("/v1/assets", params=params), 422)


async def test_list_assets_with_a_forged_cursor(client, parties: Parties) -> None:
    p = await provider(client, parties)
    await draft(client, p)
    for cursor in ("!!!", "bm90IGFuIGlk", "x" * 300):
        r = await client.get("/v1/assets", params={"cursor": cursor}, headers=p.auth)
        assert_problem(r, 422, "bad-cursor")


# -- PUT /v1/assets/{id}/content -------------------------------------------------------------


async def test_empty_upload_is_refused(client, parties: Parties, operator) -> None:
    p = await provider(client, parties)
    asset = await draft(client, p)
    before = await Snapshot.take(client, asset["id"], operator)
    assert before.asset["commitment"] is None

    r = await client.put(f"/v1/assets/{asset['id']}/content", content=b"", headers=p.auth)
    assert_problem(r, 422, "empty-content")
    await before.assert_unchanged()
    assert before.asset["commitment"] is None and before.asset["uploaded_commitment"] is None

    # After a real upload, an empty one leaves that upload (and its revision) in place.
    first = await upload(client, p, asset["id"], b"some bytes")
    assert first["revision"] == 1
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.put(f"/v1/assets/{asset['id']}/content", content=b"", headers=p.auth),
                   422, "empty-content")
    await before.assert_unchanged()
    assert before.asset["commitment"]["revision"] == 1
    assert before.asset["commitment"]["sha256"] == first["sha256"]
    second = await upload(client, p, asset["id"], b"other bytes")
    assert second["revision"] == 2


# -- objections -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def noticed(databases, tmp_path_factory) -> Any:
    """An app with a 10-day public notice, so that assets stay open to objections."""
    async with own_app(databases, tmp_path_factory.mktemp("inputs-notice"), notice_period="10d") as app:
        yield app


async def in_public_notice(app: Any, p: Signer) -> dict[str, Any]:
    asset = await submitted(app.client, p)
    r = await app.client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"},
                              headers=app.operator.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "public_notice"
    return r.json()


BAD_OBJECTIONS: dict[str, Any] = {
    "reason over 5000": {"reason": "r" * 5001},
    "evidence over 20000": {"reason": "ours", "evidence": "e" * 20_001},
    "reason a number": {"reason": 42},
    "reason a list": {"reason": ["ours"]},
    "evidence a number": {"reason": "ours", "evidence": 7},
    "reason null": {"reason": None},
    "blank reason": {"reason": "   "},
    "no reason": {"evidence": "a contract"},
    "unknown field": {"reason": "ours", "severity": "high"},
    "a JSON array": [{"reason": "ours"}],
}


@pytest.mark.parametrize("case", list(BAD_OBJECTIONS))
async def test_objection_with_a_bad_body(noticed, case: str) -> None:
    client, parties, op = noticed.client, noticed.parties, noticed.operator
    p = await provider(client, parties)
    asset = await in_public_notice(noticed, p)
    objector = await parties.verified(["buyer"])
    before = await Snapshot.take(client, asset["id"], op)

    r = await client.post(f"/v1/assets/{asset['id']}/objections", json=BAD_OBJECTIONS[case], headers=objector.auth)
    assert_problem(r, 422, VALIDATION)
    await before.assert_unchanged()
    for viewer in (op, objector):
        r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=viewer.auth)
        assert r.status_code == 200, r.text
        assert r.json() == {"items": [], "next_cursor": None}


async def test_objection_at_the_limits_is_accepted(noticed) -> None:
    client, parties = noticed.client, noticed.parties
    p = await provider(client, parties)
    asset = await in_public_notice(noticed, p)
    objector = await parties.verified(["buyer"])
    r = await client.post(f"/v1/assets/{asset['id']}/objections", json={"reason": "r" * 5000, "evidence": "e" * 20_000},
                          headers=objector.auth)
    assert r.status_code == 201, r.text
    r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=objector.auth)
    assert [len(o["reason"]) for o in r.json()["items"]] == [5000]


async def test_objection_resolution_anonymous_is_401(noticed) -> None:
    client, parties, op = noticed.client, noticed.parties, noticed.operator
    p = await provider(client, parties)
    asset = await in_public_notice(noticed, p)
    objector = await parties.verified(["buyer"])
    r = await client.post(f"/v1/assets/{asset['id']}/objections", json={"reason": "ours"}, headers=objector.auth)
    assert r.status_code == 201, r.text
    objection = r.json()
    before = await Snapshot.take(client, asset["id"], op)

    resolution = f"/v1/objections/{objection['id']}/resolution"
    assert_problem(await client.post(resolution, json={"decision": "uphold", "reason": "x"}), 401, "missing-token")
    assert_problem(await client.post(resolution, json={"decision": "uphold", "reason": "x"},
                                     headers={"Authorization": "Bearer mkt_nonsense"}), 401, "bad-token")
    assert_problem(await client.post("/v1/objections/obj_doesnotexist/resolution",
                                     json={"decision": "uphold", "reason": "x"}), 401)
    await before.assert_unchanged()
    r = await client.get(f"/v1/assets/{asset['id']}/objections", headers=op.auth)
    assert [o["status"] for o in r.json()["items"]] == ["open"]


# -- review ------------------------------------------------------------------------------------


async def test_review_of_an_unknown_asset_is_404(client, operator) -> None:
    for asset_id in ("ast_doesnotexist0000000000", "ast_", "nothing"):
        assert_problem(await client.post(f"/v1/assets/{asset_id}/review", json={"decision": "approve"},
                                         headers=operator.auth), 404, "not-found")


@pytest.mark.parametrize("flag", [
    pytest.param("yes", id="'yes'"),
    pytest.param("true", id="'true'"),
    pytest.param(1, id="1"),
    pytest.param(None, id="null"),
])
async def test_review_with_a_non_boolean_override(client, parties: Parties, operator, flag: Any) -> None:
    p = await provider(client, parties)
    asset = await submitted(client, p)
    before = await Snapshot.take(client, asset["id"], operator)
    r = await client.post(f"/v1/assets/{asset['id']}/review",
                          json={"decision": "approve", "reason": "checked", "override_conflict": flag},
                          headers=operator.auth)
    assert_problem(r, 422, VALIDATION)
    await before.assert_unchanged()
    assert before.asset["status"] == "submitted"


# -- transfers -----------------------------------------------------------------------------------


async def transfer_document(client: Any, holder: Signer, asset_id: str, to: str) -> str:
    r = await client.get(f"/v1/assets/{asset_id}/transfer-document", params={"to": to}, headers=holder.auth)
    assert r.status_code == 200, r.text
    return r.json()["signing_bytes"]


async def test_transfer_proposal_with_a_bad_signature_or_key(client, parties: Parties, operator) -> None:
    holder, recipient = await provider(client, parties), await provider(client, parties)
    revoked = await add_key(client, holder.party)
    r = await client.delete(f"/v1/accounts/me/keys/{revoked.key_id}", headers=holder.auth)
    assert r.status_code == 204, r.text
    asset = await registered_asset(client, holder, operator)
    sb = await transfer_document(client, holder, asset["id"], recipient.id)
    good = base64.b64decode(holder.sign(sb))
    before = await Snapshot.take(client, asset["id"], operator)

    cases = [
        ({"key_id": holder.key_id, "signature": "this is !! not base64"}, "bad-signature"),
        ({"key_id": holder.key_id, "signature": base64.b64encode(good)[:-4].decode() + "===="}, "bad-signature"),
        ({"key_id": holder.key_id, "signature": base64.b64encode(good[:63]).decode()}, "bad-signature"),
        ({"key_id": holder.key_id, "signature": base64.b64encode(bytes(64)).decode()}, "bad-signature"),
        ({"key_id": revoked.key_id, "signature": revoked.sign(sb)}, "revoked-key"),
        ({"key_id": recipient.key_id, "signature": recipient.sign(sb)}, "unknown-key"),
    ]
    for body, kind in cases:
        r = await client.post(f"/v1/assets/{asset['id']}/transfers", headers=holder.auth,
                              json={"signing_bytes": sb, **body})
        assert_problem(r, 422, kind)
    await before.assert_unchanged()

    # The same bytes, signed properly, are accepted: only the signature or key was wrong.
    r = await client.post(f"/v1/assets/{asset['id']}/transfers", headers=holder.auth,
                          json={"signing_bytes": sb, "key_id": holder.key_id, "signature": holder.sign(sb)})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("body", [
    {"key_id": "key_x", "signature": "AAAA"},
    {"signing_bytes": "AAAA", "signature": "AAAA"},
    {"signing_bytes": "AAAA", "key_id": "key_x", "signature": ""},
    {"signing_bytes": "AAAA", "key_id": "", "signature": "AAAA"},
    {"signing_bytes": "AAAA", "key_id": "key_" + "x" * 60, "signature": "AAAA"},
    {"signing_bytes": "AAAA", "key_id": "key_x", "signature": "A" * 201},
    {"signing_bytes": 5, "key_id": "key_x", "signature": "AAAA"},
    {"signing_bytes": "AAAA", "key_id": "key_x", "signature": "AAAA", "extra": 1},
], ids=["no signing_bytes", "no key_id", "empty signature", "empty key_id", "key_id over 40", "signature over 200",
        "signing_bytes a number", "unknown field"])
async def test_transfer_proposal_with_a_malformed_body(client, parties: Parties, operator, body: dict[str, Any]) -> None:
    holder = await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    before = await Snapshot.take(client, asset["id"], operator)
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/transfers", headers=holder.auth, json=body),
                   422, VALIDATION)
    await before.assert_unchanged()


@pytest.fixture(scope="module")
async def proposed(client, parties: Parties, operator) -> dict[str, Any]:
    """A registered asset with a transfer proposed to ``recipient``; tests must leave it proposed."""
    holder, recipient = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    sb = await transfer_document(client, holder, asset["id"], recipient.id)
    r = await client.post(f"/v1/assets/{asset['id']}/transfers", headers=holder.auth,
                          json={"signing_bytes": sb, "key_id": holder.key_id, "signature": holder.sign(sb)})
    assert r.status_code == 201, r.text
    return {"asset": asset, "transfer": r.json(), "signing_bytes": sb, "holder": holder, "recipient": recipient}


async def test_transfer_acceptance_anonymous_is_401(client, operator, proposed) -> None:
    recipient, sb = proposed["recipient"], proposed["signing_bytes"]
    before = await Snapshot.take(client, proposed["asset"]["id"], operator)
    good = {"key_id": recipient.key_id, "signature": recipient.sign(sb)}
    acceptance = f"/v1/transfers/{proposed['transfer']['id']}/acceptance"
    assert_problem(await client.post(acceptance, json=good), 401, "missing-token")
    assert_problem(await client.post(acceptance, json=good, headers={"Authorization": "Basic abc"}), 401)
    assert_problem(await client.post("/v1/transfers/trf_doesnotexist/acceptance", json=good), 401)
    await before.assert_unchanged()
    assert before.asset["provider_id"] == proposed["holder"].id


async def test_transfer_acceptance_by_neither_side(client, parties: Parties, operator, regulator, proposed) -> None:
    """A party who is neither side does not see the transfer (404); staff, who see
    everything, are told it is not theirs to accept (403 not-recipient)."""
    recipient, sb = proposed["recipient"], proposed["signing_bytes"]
    acceptance = f"/v1/transfers/{proposed['transfer']['id']}/acceptance"
    before = await Snapshot.take(client, proposed["asset"]["id"], operator)

    buyer = await add_key(client, await parties.verified(["buyer"]))
    other_provider = await provider(client, parties)
    for stranger in (buyer, other_provider):
        r = await client.post(acceptance, headers=stranger.auth,
                              json={"key_id": stranger.key_id, "signature": stranger.sign(sb)})
        assert_problem(r, 404, "not-found")
        # Indistinguishable from a transfer that does not exist.
        r = await client.post("/v1/transfers/trf_doesnotexist/acceptance", headers=stranger.auth,
                              json={"key_id": stranger.key_id, "signature": stranger.sign(sb)})
        assert_problem(r, 404, "not-found")
    r = await client.post(acceptance, headers=regulator.auth,
                          json={"key_id": recipient.key_id, "signature": recipient.sign(sb)})
    assert_problem(r, 403, "not-recipient")
    await before.assert_unchanged()
    assert before.asset["provider_id"] == proposed["holder"].id


async def test_transfer_acceptance_with_a_malformed_body(client, operator, proposed) -> None:
    recipient, sb = proposed["recipient"], proposed["signing_bytes"]
    acceptance = f"/v1/transfers/{proposed['transfer']['id']}/acceptance"
    before = await Snapshot.take(client, proposed["asset"]["id"], operator)
    good = {"key_id": recipient.key_id, "signature": recipient.sign(sb)}
    for body in ({"key_id": recipient.key_id}, {**good, "signature": 12}, {**good, "extra": True}, [good],
                 {**good, "key_id": ""}):
        assert_problem(await client.post(acceptance, headers=recipient.auth, json=body), 422, VALIDATION)
    assert_problem(await client.post(acceptance, headers=recipient.auth,
                                     json={**good, "signature": base64.b64encode(bytes(63)).decode()}),
                   422, "bad-signature")
    assert_problem(await client.post(acceptance, headers=recipient.auth, json={**good, "signature": "%%%%"}),
                   422, "bad-signature")
    await before.assert_unchanged()


# -- malformed ids in paths -------------------------------------------------------------------------


MALFORMED_IDS = {
    "300 characters": "ast_" + "a" * 296,
    "non-ASCII": "ast_数据资产",
    "an account id": "acct_0000000000000000000000000",
    "emoji": "ast_\U0001f4a5",
    "quote and semicolon": "ast_';--",
}


def asset_routes(asset_id: str, someone: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/v1/assets/{asset_id}"
    claim = {"signing_bytes": "AAAA", "key_id": "key_x", "signature": "AAAA"}
    return [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"title": "new"}}),
        ("PUT", f"{base}/content", {"content": b"bytes"}),
        ("GET", f"{base}/claim", {}),
        ("POST", f"{base}/claim", {"json": claim}),
        ("POST", f"{base}/objections", {"json": {"reason": "ours"}}),
        ("GET", f"{base}/objections", {}),
        ("GET", f"{base}/certificate", {}),
        ("GET", f"{base}/history", {}),
        ("POST", f"{base}/cancellation", {"json": {"reason": "retired"}}),
        ("GET", f"{base}/transfer-document", {"params": {"to": someone}}),
        ("POST", f"{base}/transfers", {"json": claim}),
    ]


@pytest.mark.parametrize("case", list(MALFORMED_IDS))
async def test_malformed_ids_in_paths_are_404(client, parties: Parties, operator, regulator, case: str) -> None:
    bad = MALFORMED_IDS[case]
    if case == "an account id":
        bad = (await parties.verified(["provider"])).id  # a real id, of the wrong kind
    p = await provider(client, parties)
    other = await provider(client, parties)
    before_all = await asset_ids(client, operator)

    for caller in (p, operator, regulator):
        for method, path, kwargs in asset_routes(bad, other.id):
            r = await client.request(method, path, headers=caller.auth, **kwargs)
            assert r.status_code != 500, (method, path, r.text)
            assert_problem(r, 404, "not-found")
    for method, path, kwargs in asset_routes(bad, other.id):
        if method == "GET" and not path.endswith(("/claim", "/objections", "/transfer-document")):
            assert_problem(await client.request(method, path, **kwargs), 404, "not-found")

    assert_problem(await client.post(f"/v1/assets/{bad}/review", json={"decision": "approve"},
                                     headers=operator.auth), 404, "not-found")
    assert_problem(await client.post(f"/v1/objections/{bad}/resolution", json={"decision": "dismiss", "reason": "x"},
                                     headers=operator.auth), 404, "not-found")
    assert_problem(await client.post(f"/v1/transfers/{bad}/acceptance",
                                     json={"key_id": p.key_id, "signature": "AAAA"}, headers=p.auth),
                   404, "not-found")
    assert await asset_ids(client, operator) == before_all
