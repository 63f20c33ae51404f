"""A frozen asset or listing says so, and says why to its holder: the regulator's reason
(the freeze action's), not the reviewer's old words; a listing of a frozen asset is
frozen too, not only not orderable. Everyone sees that and since when; only the holder
and staff see why."""

from typing import Any

from tests.conftest import Parties, Party, assert_problem
from tests.listings.support import listable_asset, publish, read_listing
from tests.registry_support import provider
from tests.regulator_acts import act
from tests.trading.support import buyer, order_body


async def action(client: Any, regulator: Party, name: str, target: str, reason: str) -> dict[str, Any]:
    r = await act(client, regulator, "action", None, {"action": name, "target": target, "reason": reason})
    assert r.status_code == 201, r.text
    return r.json()


async def read_asset(client: Any, asset_id: str, viewer: Any = None) -> dict[str, Any]:
    r = await client.get(f"/v1/assets/{asset_id}", headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


def freeze_of(view: dict[str, Any]) -> tuple[Any, ...]:
    return view["frozen"], view.get("frozen_by"), view["frozen_reason"], view["frozen_at"] is not None


async def test_a_frozen_asset_and_its_listing_give_the_regulators_reason(client, parties: Parties, operator: Party,
                                                                          regulator: Party) -> None:
    holder = await provider(client, parties)
    stranger = await parties.verified(["provider", "buyer"])
    asset = await listable_asset(client, holder, operator)
    listing = await publish(client, holder, asset["id"])
    reviewed = (await read_asset(client, asset["id"], holder))["status_reason"]
    assert (await read_asset(client, asset["id"], holder))["frozen_reason"] is None
    assert freeze_of(await read_listing(client, listing["id"], holder)) == (False, [], None, False)

    made = await action(client, regulator, "freeze_asset", asset["id"], "来源合法性存疑 source under inquiry")
    for who in (holder, operator, regulator):
        seen = await read_asset(client, asset["id"], who)
        assert (seen["frozen"], seen["frozen_reason"]) == (True, "来源合法性存疑 source under inquiry")
        assert seen["status_reason"] == reviewed  # the reviewer's words stay the reviewer's
        assert seen["frozen_at"] is not None and seen["frozen_at"][:10] == made["created_at"][:10]
        view = await read_listing(client, listing["id"], who)
        assert freeze_of(view) == (True, ["asset"], "来源合法性存疑 source under inquiry", True)
        assert view["orderable"] is False and view["status"] == "active"
    since = (await read_asset(client, asset["id"], holder))["frozen_at"]
    for who in (None, stranger):  # frozen and since when, for everyone; why, not
        seen = await read_asset(client, asset["id"], who)
        assert (seen["frozen"], seen["frozen_reason"], seen["frozen_at"]) == (True, None, since)
        assert freeze_of(await read_listing(client, listing["id"], who)) == (True, ["asset"], None, True)

    # The listing frozen as well: its own freeze is the reason given first.
    await action(client, regulator, "freeze_listing", listing["id"], "misleading description")
    view = await read_listing(client, listing["id"], holder)
    assert freeze_of(view) == (True, ["listing", "asset"], "misleading description", True)
    await action(client, regulator, "unfreeze_asset", asset["id"], "source documents received")
    seen = await read_asset(client, asset["id"], holder)
    assert (seen["frozen"], seen["frozen_reason"], seen["frozen_at"]) == (False, None, None)
    assert freeze_of(await read_listing(client, listing["id"], holder)) == \
        (True, ["listing"], "misleading description", True)
    await action(client, regulator, "unfreeze_listing", listing["id"], "corrected")
    assert freeze_of(await read_listing(client, listing["id"], holder)) == (False, [], None, False)

    # Frozen again: the newest freeze's reason, not the first one's.
    await action(client, regulator, "freeze_asset", asset["id"], "second inquiry")
    assert (await read_asset(client, asset["id"], holder))["frozen_reason"] == "second inquiry"
    assert (await read_listing(client, listing["id"], holder))["frozen_reason"] == "second inquiry"

    # Only a regulator freezes; a refused action changes no reason.
    for who in (operator, holder):
        r = await client.post("/v1/oversight/actions", headers=who.auth, json={
            "action": "freeze_asset", "target": asset["id"], "reason": "not mine to say"})
        assert_problem(r, 403, "wrong-role")
    assert (await read_asset(client, asset["id"], holder))["frozen_reason"] == "second inquiry"

    # Staff see it in the search of everything too; the buyer is told it cannot order.
    found = (await client.get("/v1/listings", params={"include": "all", "q": listing["title"]},
                              headers=operator.auth)).json()["items"]
    assert {x["id"]: x["frozen_reason"] for x in found}.get(listing["id"]) == "second inquiry"
    b = await buyer(client, parties)
    assert_problem(await client.post("/v1/orders", json=order_body(listing, "one_time"), headers=b.auth), 409,
                   "not-orderable")

