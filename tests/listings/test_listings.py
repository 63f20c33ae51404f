"""Listings over HTTP: the lifecycle and its ledger entries, who may list, terms versions,
private plans, and who sees what. A refused request changes nothing."""

import json
from typing import Any

import pytest
from sqlalchemy import select

from market.core.errors import Conflict, Forbidden
from market.listings import service
from market.listings.models import ListingTerms
from market.registry import review
from tests.conftest import Parties, Party, assert_problem
from tests.listings.support import (
    LICENCE,
    PLANS,
    entries,
    found_ids,
    listable_asset,
    listed,
    listing_body,
    publish,
    read_listing,
    search,
    terms_sha256,
    word,
)
from tests.registry_support import act, draft, propose, provider, submitted_asset
from tests.statements import counted


async def test_publish_puts_terms_on_the_ledger(client, parties: Parties, operator: Party) -> None:
    holder = await provider(client, parties)
    asset = await listable_asset(client, holder, operator)
    listing = await publish(client, holder, asset["id"])
    assert listing["status"] == "active" and listing["terms_version"] == 1 and listing["orderable"] is True
    assert listing["registration_number"] == asset["registration_number"]
    assert [p["model"] for p in listing["plans"]] == ["one_time", "subscription"]
    assert all(p["id"].startswith("pln_") for p in listing["plans"])
    assert listing["terms_sha256"] == terms_sha256(listing)
    [entry] = await entries(client, listing["id"])
    assert entry["type"] == "listing.published" and entry["actor"] == holder.id
    assert entry["data"]["terms_sha256"] == listing["terms_sha256"] and entry["data"]["terms_version"] == 1
    assert entry["data"]["asset"] == asset["id"]
    # No free text on the ledger: only its digest.
    assert "深圳" not in json.dumps(entry, ensure_ascii=False) and len(entry["data"]["text_sha256"]) == 64
    assert await read_listing(client, listing["id"]) == {**listing}


async def test_only_the_holder_of_the_operation_right_may_list(client, parties: Parties, operator: Party) -> None:
    holder, other = await provider(client, parties), await provider(client, parties)
    no_operation = await listable_asset(client, holder, operator, rights="holding,use")
    r = await client.post("/v1/listings", json=listing_body(no_operation["id"]), headers=holder.auth)
    assert_problem(r, 422, "missing-operation-right")
    assert await entries(client, no_operation["id"].replace("ast_", "lst_")) == []

    asset = await listable_asset(client, holder, operator)
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"]), headers=other.auth), 403,
                   "not-owner")
    buyer = await parties.verified(["buyer"])
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"]), headers=buyer.auth), 403,
                   "wrong-role")
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"])), 401)
    pending = await parties.sign_up(["provider"])
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"]), headers=pending.auth), 403,
                   "account-not-verified")
    # Another party's draft does not exist for it; one's own draft or submission is not listable.
    own_draft = await draft(client, holder)
    assert_problem(await client.post("/v1/listings", json=listing_body(own_draft["id"]), headers=other.auth), 404)
    assert_problem(await client.post("/v1/listings", json=listing_body(own_draft["id"]), headers=holder.auth), 409,
                   "not-listable")
    submitted = await submitted_asset(client, holder)
    assert_problem(await client.post("/v1/listings", json=listing_body(submitted["id"]), headers=holder.auth), 409,
                   "not-listable")
    assert_problem(await client.post("/v1/listings", json=listing_body("ast_nothing"), headers=holder.auth), 404)
    assert await found_ids(client, holder, provider=holder.id, include="all") == []


async def test_one_live_listing_per_asset(client, parties: Parties, operator: Party) -> None:
    holder = await provider(client, parties)
    asset = await listable_asset(client, holder, operator)
    first = await publish(client, holder, asset["id"])
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"]), headers=holder.auth), 409,
                   "already-listed")
    r = await client.patch(f"/v1/listings/{first['id']}", json={"status": "delisted", "reason": "new edition"},
                           headers=holder.auth)
    assert r.status_code == 200 and r.json()["status"] == "delisted" and r.json()["orderable"] is False
    second = await publish(client, holder, asset["id"])
    assert second["id"] != first["id"]
    # Delisting is final.
    assert_problem(await client.patch(f"/v1/listings/{first['id']}", json={"status": "active"}, headers=holder.auth),
                   409, "invalid-transition")
    assert_problem(await client.patch(f"/v1/listings/{first['id']}", json={"title": "x"}, headers=holder.auth),
                   409, "invalid-transition")


async def test_a_change_of_terms_is_a_new_version(client, parties: Parties, operator: Party, settings) -> None:
    holder = await provider(client, parties)
    listing = await listed(client, holder, operator)
    one_time, subscription = listing["plans"]
    url = f"/v1/listings/{listing['id']}"

    # Text alone: same terms.
    r = await client.patch(url, json={"title": "深圳交通出行数据 2027", "tags": ["交通"]}, headers=holder.auth)
    assert r.status_code == 200, r.text
    assert r.json()["terms_version"] == 1 and r.json()["title"] == "深圳交通出行数据 2027"
    # A new price keeps the plan's id; a new plan gets one; a dropped plan is gone.
    plans = [{**one_time, "price": {"amount": 990_000, "currency": "CNY"}},
             {"model": "free", "price": {"amount": 0, "currency": "CNY"}}]
    plans[0].pop("period_days", None), plans[0].pop("private_to", None)
    r = await client.patch(url, json={"plans": plans}, headers=holder.auth)
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["terms_version"] == 2 and v2["terms_sha256"] == terms_sha256(v2) != listing["terms_sha256"]
    assert v2["plans"][0]["id"] == one_time["id"] and v2["plans"][0]["price"]["amount"] == 990_000
    assert subscription["id"] not in {p["id"] for p in v2["plans"]}
    # The same terms again make no version.
    r = await client.patch(url, json={"licence": LICENCE}, headers=holder.auth)
    assert r.json()["terms_version"] == 2
    r = await client.patch(url, json={"licence": {**LICENCE, "territory": "global"}}, headers=holder.auth)
    assert r.json()["terms_version"] == 3

    types = [e["type"] for e in await entries(client, listing["id"])]
    assert types == ["listing.published", "listing.updated", "listing.terms_changed", "listing.terms_changed"]
    changed = [e for e in await entries(client, listing["id"]) if e["type"] == "listing.terms_changed"]
    assert [e["data"]["terms_version"] for e in changed] == [2, 3]
    assert changed[-1]["data"]["terms_sha256"] == r.json()["terms_sha256"]

    # Every version is kept, each with the digest of its own plans and licence.
    async def versions() -> list[Any]:
        async with client.app.state.services.read_sessionmaker() as s:
            return list((await s.execute(select(ListingTerms).where(ListingTerms.listing_id == listing["id"])
                                         .order_by(ListingTerms.version))).scalars())

    kept = client.blocking_portal.call(versions)
    assert [k.version for k in kept] == [1, 2, 3]
    assert kept[0].terms_sha256 == listing["terms_sha256"] and kept[1].terms_sha256 == v2["terms_sha256"]
    assert json.loads(kept[0].plans)[1]["id"] == subscription["id"]

    # A plan id that is not the listing's is refused, and changes nothing.
    bad = [{**plans[1], "id": "pln_" + "a" * 26}]
    assert_problem(await client.patch(url, json={"plans": bad}, headers=holder.auth), 422, "unknown-plan")
    assert (await read_listing(client, listing["id"]))["terms_version"] == 3


async def test_pause_resume_and_who_may_change(client, parties: Parties, operator: Party) -> None:
    holder, other = await provider(client, parties), await provider(client, parties)
    tag = word()
    listing = await listed(client, holder, operator, tags=[tag])
    url = f"/v1/listings/{listing['id']}"
    assert await found_ids(client, q=tag) == [listing["id"]]
    assert_problem(await client.patch(url, json={"status": "paused"}, headers=other.auth), 403, "not-owner")
    assert_problem(await client.patch(url, json={"status": "paused"}, headers=operator.auth), 403, "not-owner")
    assert_problem(await client.patch(url, json={"status": "paused"}), 401)
    assert_problem(await client.patch("/v1/listings/lst_nothing", json={"status": "paused"}, headers=holder.auth), 404)

    r = await client.patch(url, json={"status": "paused", "reason": "stock-take"}, headers=holder.auth)
    assert r.status_code == 200 and r.json()["status"] == "paused" and r.json()["orderable"] is False
    assert await found_ids(client, q=tag) == []
    assert await found_ids(client, holder, q=tag) == []
    assert await found_ids(client, operator, q=tag, include="all") == [listing["id"]]
    assert await found_ids(client, holder, q=tag, provider=holder.id, include="all") == [listing["id"]]
    assert_problem(await client.get("/v1/listings", params={"q": tag, "include": "all"}, headers=holder.auth), 403)
    # Still readable by id, by anyone.
    assert (await read_listing(client, listing["id"]))["status"] == "paused"

    r = await client.patch(url, json={"status": "active"}, headers=holder.auth)
    assert r.status_code == 200 and r.json()["orderable"] is True
    assert await found_ids(client, q=tag) == [listing["id"]]
    types = [e["type"] for e in await entries(client, listing["id"])]
    assert types == ["listing.published", "listing.paused", "listing.resumed"]


@pytest.mark.parametrize("body, field", [
    ({"plans": []}, "plans"),
    ({"plans": [{"model": "free", "price": {"amount": 100, "currency": "CNY"}}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": 0, "currency": "CNY"}}]}, "plans"),
    ({"plans": [{"model": "subscription", "price": {"amount": 100, "currency": "CNY"}}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": 100, "currency": "CNY"}, "period_days": 3}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": 12.5, "currency": "CNY"}}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": "100", "currency": "CNY"}}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": -1, "currency": "CNY"}}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": 100, "currency": "XYZ"}}]}, "plans"),
    ({"plans": [{"model": "one_time", "price": {"amount": 100, "currency": "CNY"}},
                {"model": "one_time", "price": {"amount": 100, "currency": "USD"}}]}, "plans"),
    ({"plans": [{"model": "lease", "price": {"amount": 100, "currency": "CNY"}}]}, "plans"),
    ({"licence": {**LICENCE, "purposes": []}}, "licence"),
    ({"licence": {**LICENCE, "purposes": ["mind_reading"]}}, "licence"),
    ({"licence": {**LICENCE, "purposes": ["research", "research"]}}, "licence"),
    ({"licence": {**LICENCE, "term_days": 0}}, "licence"),
    ({"licence": {**LICENCE, "redistribution": "no"}}, "licence"),
    ({"licence": {**LICENCE, "territory": "mars"}}, "licence"),
    ({"licence": {k: v for k, v in LICENCE.items() if k != "term_days"}}, "licence"),
    ({"title": ""}, "title"),
    ({"tags": ["x" * 51]}, "tags"),
    ({"approval_required": "yes"}, "approval_required"),
    ({"surprise": 1}, "surprise"),
])
async def test_bad_listings_are_refused(client, parties: Parties, operator: Party, body: dict[str, Any],
                                        field: str) -> None:
    holder = await provider(client, parties)
    asset = await listable_asset(client, holder, operator)
    problem = assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"], **body),
                                               headers=holder.auth), 422)
    assert field in json.dumps(problem)
    assert await found_ids(client, holder, provider=holder.id, include="all") == []


async def test_bad_changes_are_refused(client, parties: Parties, operator: Party) -> None:
    holder = await provider(client, parties)
    listing = await listed(client, holder, operator)
    url = f"/v1/listings/{listing['id']}"
    for body in ({}, {"reason": "only a reason"}, {"status": "sold"}, {"title": None},
                 {"status": "delisted", "title": "and a new title"}, {"plans": [{"model": "free"}]}):
        assert_problem(await client.patch(url, json=body, headers=holder.auth), 422)
    assert await read_listing(client, listing["id"]) == listing
    assert [e["type"] for e in await entries(client, listing["id"])] == ["listing.published"]


async def test_private_plans_are_shown_to_their_buyers_only(client, parties: Parties, operator: Party,
                                                           regulator: Party) -> None:
    holder = await provider(client, parties)
    chosen, stranger = await parties.verified(["buyer"]), await parties.verified(["buyer"])
    tag = word()
    private = {"model": "one_time", "price": {"amount": 500_000, "currency": "CNY"}, "private_to": [chosen.id]}
    listing = await listed(client, holder, operator, tags=[tag], plans=[PLANS[0], private])
    assert len(listing["plans"]) == 2 and listing["plans"][1]["private_to"] == [chosen.id]
    for viewer, count in ((None, 1), (stranger, 1), (chosen, 2), (holder, 2), (operator, 2), (regulator, 2)):
        shown = (await read_listing(client, listing["id"], viewer))["plans"]
        assert len(shown) == count, viewer
    # A listing whose every plan is private is found by its buyers (and holder) only.
    tag2 = word()
    only_private = await listed(client, holder, operator, tags=[tag2], plans=[private])
    assert await found_ids(client, q=tag2) == []
    assert await found_ids(client, stranger, q=tag2) == []
    assert await found_ids(client, chosen, q=tag2) == [only_private["id"]]
    assert await found_ids(client, holder, q=tag2) == [only_private["id"]]
    assert (await read_listing(client, only_private["id"], stranger))["plans"] == []
    # A private plan names buyers, not the holder or a stranger to the market.
    holder_plan = {**private, "private_to": [holder.id]}
    asset = await listable_asset(client, holder, operator)
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"], plans=[holder_plan]),
                                     headers=holder.auth), 422, "bad-private-plan")
    ghost = {**private, "private_to": ["acct_nobody"]}
    assert_problem(await client.post("/v1/listings", json=listing_body(asset["id"], plans=[ghost]),
                                     headers=holder.auth), 422, "unknown-buyer")


async def test_search_shows_each_caller_a_listing_as_reading_it_does(client, parties: Parties, operator: Party) -> None:
    """A search's items are presented for the caller where it sees more than anyone (its
    own listing, a private plan naming it, staff) and shared otherwise; asked twice, the
    second answer comes from memory and is the same."""
    holder, other = await provider(client, parties), await provider(client, parties)
    chosen, stranger = await parties.verified(["buyer"]), await parties.verified(["buyer"])
    tag = word()
    private = {"model": "one_time", "price": {"amount": 500_000, "currency": "CNY"}, "private_to": [chosen.id]}
    await listed(client, holder, operator, tags=[tag], plans=[PLANS[0], private])
    await listed(client, holder, operator, tags=[tag], plans=[private])
    await listed(client, other, operator, tags=[tag])
    for viewer, count in ((None, 2), (stranger, 2), (chosen, 3), (holder, 3), (other, 2), (operator, 2)):
        for _ in range(2):
            page = await search(client, viewer, q=tag, limit=2)
            rest = await search(client, viewer, q=tag, limit=2, cursor=page["next_cursor"]) \
                if page["next_cursor"] else {"items": []}
            assert list(page) == ["items", "next_cursor", "facets", "total"]
            assert page["total"] == count, viewer
            items = page["items"] + rest["items"]
            assert len(items) == count
            assert items == [await read_listing(client, item["id"], viewer) for item in items]


async def test_a_named_buyers_search_is_remembered_until_a_listing_changes(client, parties: Parties,
                                                                          operator: Party) -> None:
    """A buyer a private plan names: asked again, its search reads nothing (which of its
    extras match, and the listing as it sees it, are remembered for it alone); a change to
    the listing is seen by its next search, and another buyer never gets its answer."""
    holder, chosen, stranger = await provider(client, parties), *[await parties.verified(["buyer"]) for _ in "ab"]
    tag = word()
    private = {"model": "one_time", "price": {"amount": 500_000, "currency": "CNY"}, "private_to": [chosen.id]}
    only = await listed(client, holder, operator, tags=[tag], plans=[private])
    first = await search(client, chosen, q=tag)
    assert [i["id"] for i in first["items"]] == [only["id"]] and first["items"][0]["plans"]
    with counted(client.app.state.services) as seen:
        again = await search(client, chosen, q=tag)
    assert again == first
    assert not [s for s in seen if "listing" in s], seen
    assert (await search(client, stranger, q=tag))["items"] == []
    r = await client.patch(f"/v1/listings/{only['id']}", json={"title": f"新标题 {tag}"}, headers=holder.auth)
    assert r.status_code == 200, r.text
    after = await search(client, chosen, q=tag)
    assert after["items"] == [await read_listing(client, only["id"], chosen)]
    assert after["items"][0]["title"] == f"新标题 {tag}"


async def test_the_asset_decides_whether_a_listing_is_orderable(client, parties: Parties, operator: Party,
                                                               regulator: Party, settings) -> None:
    holder, receiver = await provider(client, parties), await provider(client, parties)
    tag = word()
    listing = await listed(client, holder, operator, tags=[tag])
    asset_id = listing["asset_id"]

    await act(client, settings, regulator, review.set_frozen, asset_id, True, "under investigation")
    assert (await read_listing(client, listing["id"]))["orderable"] is False
    assert await found_ids(client, q=tag) == [] and await found_ids(client, holder, q=tag) == []
    assert await found_ids(client, regulator, q=tag, include="all") == [listing["id"]]
    # While the asset is frozen the holder cannot resume a paused listing either.
    r = await client.patch(f"/v1/listings/{listing['id']}", json={"status": "paused"}, headers=holder.auth)
    assert r.status_code == 200
    assert_problem(await client.patch(f"/v1/listings/{listing['id']}", json={"status": "active"},
                                      headers=holder.auth), 409, "not-listable")
    await act(client, settings, regulator, review.set_frozen, asset_id, False, "cleared")
    r = await client.patch(f"/v1/listings/{listing['id']}", json={"status": "active"}, headers=holder.auth)
    assert r.status_code == 200 and r.json()["orderable"] is True
    assert await found_ids(client, q=tag) == [listing["id"]]

    # A new holder of the asset does not inherit the listing: it stops being orderable.
    transfer, signing_bytes = await propose(client, holder, asset_id, receiver.id)
    r = await client.post(f"/v1/transfers/{transfer['id']}/acceptance", headers=receiver.auth,
                          json={"key_id": receiver.key_id, "signature": receiver.sign(signing_bytes)})
    assert r.status_code == 200, r.text
    assert (await read_listing(client, listing["id"]))["orderable"] is False
    assert await found_ids(client, q=tag) == [] and await found_ids(client, receiver, q=tag) == []
    # The market delisted the old holder's offer; the new holder may list under its own terms.
    old = await read_listing(client, listing["id"])
    assert old["status"] == "delisted"
    last = (await entries(client, listing["id"]))[-1]
    assert last["type"] == "listing.delisted" and last["actor"] == "market"
    assert last["data"] == {"cause": "asset_transferred"}
    mine = await publish(client, receiver, asset_id, tags=[tag])
    assert await found_ids(client, q=tag) == [mine["id"]]


async def test_a_revoked_or_suspended_holder_takes_its_listings_out(client, parties: Parties, operator: Party,
                                                                    regulator: Party, settings) -> None:
    from market.accounts import service as accounts

    holder = await provider(client, parties)
    tag = word()
    first = await listed(client, holder, operator, tags=[tag])
    second = await listed(client, holder, operator, tags=[tag])
    assert sorted(await found_ids(client, q=tag)) == sorted([first["id"], second["id"]])
    await act(client, settings, regulator, accounts.set_suspended, holder.id, True, "inquiry")
    assert await found_ids(client, q=tag) == []
    assert (await read_listing(client, first["id"]))["orderable"] is False
    await act(client, settings, regulator, accounts.set_suspended, holder.id, False, "cleared")
    assert sorted(await found_ids(client, q=tag)) == sorted([first["id"], second["id"]])
    await act(client, settings, regulator, review.revoke, first["asset_id"], "unlawful source")
    assert await found_ids(client, q=tag) == [second["id"]]
    assert (await read_listing(client, first["id"]))["orderable"] is False


async def test_a_regulator_freezes_a_listing(client, parties: Parties, operator: Party, regulator: Party,
                                            settings) -> None:
    holder = await provider(client, parties)
    tag = word()
    listing = await listed(client, holder, operator, tags=[tag])
    with pytest.raises(Forbidden):
        await act(client, settings, operator, service.set_frozen, listing["id"], True, "operators do not freeze")
    with pytest.raises(Forbidden):
        await act(client, settings, holder, service.set_frozen, listing["id"], True, "nor do holders")
    await act(client, settings, regulator, service.set_frozen, listing["id"], True, "misleading description")
    view = await read_listing(client, listing["id"])
    assert view["frozen"] is True and view["orderable"] is False and view["status"] == "active"
    assert await found_ids(client, q=tag) == []
    assert_problem(await client.patch(f"/v1/listings/{listing['id']}", json={"title": "new"}, headers=holder.auth),
                   403, "listing-frozen")
    with pytest.raises(Conflict):
        await act(client, settings, regulator, service.set_frozen, listing["id"], True, "again")
    await act(client, settings, regulator, service.set_frozen, listing["id"], False, "corrected")
    assert await found_ids(client, q=tag) == [listing["id"]]
    types = [e["type"] for e in await entries(client, listing["id"])]
    assert types == ["listing.published", "listing.frozen", "listing.unfrozen"]


async def test_publishing_is_idempotent(client, parties: Parties, operator: Party) -> None:
    holder = await provider(client, parties)
    asset = await listable_asset(client, holder, operator)
    headers = {**holder.auth, "Idempotency-Key": "8c4a9a52-86a4-4a39-a9e5-3c0a7f4e6a11"}
    first = await client.post("/v1/listings", json=listing_body(asset["id"]), headers=headers)
    again = await client.post("/v1/listings", json=listing_body(asset["id"]), headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    other = await client.post("/v1/listings", json=listing_body(asset["id"], title="else"), headers=headers)
    assert_problem(other, 409)
    assert len(await entries(client, first.json()["id"])) == 1


async def test_racing_publications_of_one_asset_make_one_listing(client, parties: Parties, operator: Party) -> None:
    from tests.registry_support import concurrently

    holder = await provider(client, parties)
    asset = await listable_asset(client, holder, operator)
    body = listing_body(asset["id"])
    responses = await concurrently(client, *[("POST", "/v1/listings", {"json": body, "headers": holder.auth})] * 4)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"].rsplit("/", 1)[1] in ("already-listed", "concurrent-update")
    created = next(r.json() for r in responses if r.status_code == 201)
    assert await found_ids(client, holder, provider=holder.id, include="all") == [created["id"]]
    assert [e["type"] for e in await entries(client, created["id"])] == ["listing.published"]


async def test_racing_changes_of_one_listing_each_win_or_lose_whole(client, parties: Parties,
                                                                     operator: Party) -> None:
    from tests.registry_support import concurrently

    holder = await provider(client, parties)
    listing = await listed(client, holder, operator)
    url = f"/v1/listings/{listing['id']}"
    responses = await concurrently(client, *[
        ("PATCH", url, {"json": {"plans": [{"model": "one_time", "price": {"amount": 1000 + i, "currency": "CNY"}}]},
                        "headers": holder.auth}) for i in range(4)])
    won = [r.json() for r in responses if r.status_code == 200]
    assert won and all(r.status_code in (200, 409) for r in responses)
    final = await read_listing(client, listing["id"], holder)
    assert final["terms_version"] == 1 + len(won)
    changed = [e for e in await entries(client, listing["id"]) if e["type"] == "listing.terms_changed"]
    assert [e["data"]["terms_version"] for e in changed] == list(range(2, 2 + len(won)))
    assert changed[-1]["data"]["terms_sha256"] == final["terms_sha256"] == terms_sha256(final)
