"""Helpers for trading tests: a listing to buy from, a buyer, an order."""

from typing import Any

from tests.conftest import Parties, Party
from tests.listings.support import LICENCE, listable_asset, publish
from tests.registry_support import Signer, add_key, provider

FREE = {"model": "free", "price": {"amount": 0, "currency": "CNY"}}
ONE_TIME = {"model": "one_time", "price": {"amount": 880_000, "currency": "CNY"}}
SUBSCRIPTION = {"model": "subscription", "price": {"amount": 120_000, "currency": "CNY"}, "period_days": 30}


async def offer(client: Any, parties: Parties, operator: Party, plans: list[dict[str, Any]] | None = None,
                asset: dict[str, Any] | None = None, **listing: Any) -> tuple[Signer, dict[str, Any]]:
    """A provider and its active listing (one-time and free plans unless ``plans``)."""
    holder = await provider(client, parties)
    registered = await listable_asset(client, holder, operator, **(asset or {}))
    made = await publish(client, holder, registered["id"], plans=plans or [ONE_TIME, FREE], **listing)
    return holder, made


async def buyer(client: Any, parties: Parties, **extra: Any) -> Signer:
    return await add_key(client, await parties.verified(["buyer"], **extra))


def plan_of(listing: dict[str, Any], model: str) -> str:
    return next(p["id"] for p in listing["plans"] if p["model"] == model)


def order_body(listing: dict[str, Any], model: str = "free", purpose: str = "research",
               payment_method: str | None = None) -> dict[str, Any]:
    method = payment_method or ("free" if model == "free" else "bank_transfer")
    return {"listing_id": listing["id"], "plan_id": plan_of(listing, model), "purpose": purpose,
            "payment_method": method}


async def place(client: Any, who: Any, listing: dict[str, Any], model: str = "free", **kw: Any) -> dict[str, Any]:
    r = await client.post("/v1/orders", json=order_body(listing, model, **kw), headers=who.auth)
    assert r.status_code == 201, r.text
    return r.json()


async def pay_by_bank(client: Any, operator: Party, order: dict[str, Any], reference: str = "CMB-2026-0001") -> Any:
    return await client.post(f"/v1/orders/{order['id']}/payment", headers=operator.auth,
                             json={"reference": reference, "amount": order["price"]})


__all__ = ["FREE", "LICENCE", "ONE_TIME", "SUBSCRIPTION", "buyer", "offer", "order_body", "pay_by_bank", "place",
           "plan_of"]


async def take_piece(sending: Any) -> bytes | None:
    """The next piece of a download under way (``delivery.Sending``), counted as sent as the
    server counts it, or None once the download stopped."""
    try:
        piece: bytes = await anext(sending)
    except StopAsyncIteration:
        return None
    sending.sent(piece)
    return piece
