"""Helpers for listing tests: an asset that may be listed, a listing, its ledger entries."""

import hashlib
import os
import secrets
from typing import Any

import rfc8785

from tests.conftest import Party
from tests.registry_support import Signer, draft, ledger_items, submit, upload

LICENCE = {"purposes": ["research", "urban_planning"], "term_days": 365, "redistribution": False,
           "territory": "domestic"}
PLANS = [
    {"model": "one_time", "price": {"amount": 880_000, "currency": "CNY"}},
    {"model": "subscription", "price": {"amount": 120_000, "currency": "CNY"}, "period_days": 30},
]


def listing_body(asset_id: str, **changes: Any) -> dict[str, Any]:
    return {"asset_id": asset_id, "title": "深圳交通出行数据", "summary": "Daily trips by bus and metro.",
            "description": "Origin-destination counts by district and hour.", "tags": ["交通", "bus"],
            "plans": PLANS, "licence": LICENCE, **changes}


async def listable_asset(client: Any, signer: Signer, operator: Party, rights: str = "holding,use,operation",
                         **changes: Any) -> dict[str, Any]:
    """A registered asset of ``signer`` whose rights are ``rights`` (the test notice period is 0)."""
    asset = await draft(client, signer, **changes)
    await upload(client, signer, asset["id"], os.urandom(1000))
    await submit(client, signer, asset["id"], rights)
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"}, headers=operator.auth)
    assert r.status_code == 200 and r.json()["status"] == "registered", r.text
    return r.json()


async def publish(client: Any, signer: Signer | Party, asset_id: str, **changes: Any) -> dict[str, Any]:
    r = await client.post("/v1/listings", json=listing_body(asset_id, **changes), headers=signer.auth)
    assert r.status_code == 201, r.text
    return r.json()


async def listed(client: Any, signer: Signer, operator: Party, **changes: Any) -> dict[str, Any]:
    asset = await listable_asset(client, signer, operator)
    return await publish(client, signer, asset["id"], **changes)


async def read_listing(client: Any, listing_id: str, viewer: Any = None) -> dict[str, Any]:
    r = await client.get(f"/v1/listings/{listing_id}", headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


async def entries(client: Any, listing_id: str) -> list[dict[str, Any]]:
    return [i["entry"] for i in await ledger_items(client, listing_id, kind="listing")]


def terms_sha256(listing: dict[str, Any]) -> str:
    """The digest docs/API.md defines, recomputed from a listing as its holder reads it."""
    plans = [{k: v for k, v in p.items() if v is not None} for p in listing["plans"]]
    return hashlib.sha256(rfc8785.dumps({"plans": plans, "licence": listing["licence"]})).hexdigest()


def word() -> str:
    """A made-up English word no other test's listing contains."""
    return "zq" + "".join(secrets.choice("bcdfghjklmnpqrstvwxz") for _ in range(8))


async def search(client: Any, viewer: Any = None, **params: Any) -> dict[str, Any]:
    r = await client.get("/v1/listings", params=params, headers=viewer.auth if viewer else {})
    assert r.status_code == 200, r.text
    return r.json()


async def found_ids(client: Any, viewer: Any = None, **params: Any) -> list[str]:
    return [x["id"] for x in (await search(client, viewer, **params))["items"]]
