"""A regulator's acts on a registration and an account (freeze, revoke, suspend), as
the services the oversight API calls: each refuses the wrong role, is on the ledger,
takes effect at once, and voids pending transfer proposals where it must."""

import os
from typing import Any

import pytest

from market.accounts import service as accounts
from market.core.errors import Conflict, Forbidden
from market.registry import review
from tests.conftest import Parties, assert_problem
from tests.registry_support import act, entry_types, propose, provider, read_asset, registered_asset


async def test_a_frozen_asset_refuses_its_holder_and_voids_proposals(client, parties: Parties, operator, regulator,
                                                                     settings) -> None:
    holder, receiver = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    transfer, _ = await propose(client, holder, asset["id"], receiver.id)
    with pytest.raises(Forbidden, match="regulator role"):
        await act(client, settings, operator, review.set_frozen, asset["id"], True, "not staff's to freeze")

    await act(client, settings, regulator, review.set_frozen, asset["id"], True, "under investigation")
    assert (await read_asset(client, asset["id"]))["frozen"] is True
    assert (await client.get(f"/v1/transfers/{transfer['id']}", headers=holder.auth)).json()["status"] == "void"
    assert_problem(await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "x"},
                                     headers=holder.auth), 403, "asset-frozen")
    r = await client.put(f"/v1/assets/{asset['id']}/content", content=os.urandom(10), headers=holder.auth)
    assert_problem(r, 403, "asset-frozen")
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/transfer-document", params={"to": receiver.id},
                                    headers=holder.auth), 403, "asset-frozen")
    with pytest.raises(Conflict, match="already frozen"):
        await act(client, settings, regulator, review.set_frozen, asset["id"], True, "again")

    await act(client, settings, regulator, review.set_frozen, asset["id"], False, "cleared")
    r = await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "x"}, headers=holder.auth)
    assert r.status_code == 200, r.text
    types = await entry_types(client, asset["id"])
    assert ["asset.frozen", "asset.unfrozen", "asset.cancelled"] == [t for t in types if t in
                                                                     ("asset.frozen", "asset.unfrozen", "asset.cancelled")]


async def test_a_revoked_registration(client, parties: Parties, operator, regulator, settings) -> None:
    holder, receiver = await provider(client, parties), await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    transfer, _ = await propose(client, holder, asset["id"], receiver.id)
    with pytest.raises(Forbidden):
        await act(client, settings, holder, review.revoke, asset["id"], "mine")
    await act(client, settings, regulator, review.revoke, asset["id"], "unlawful source")
    view = await read_asset(client, asset["id"])
    assert view["status"] == "revoked" and view["registration_number"] == asset["registration_number"]
    assert (await client.get(f"/v1/transfers/{transfer['id']}", headers=receiver.auth)).json()["status"] == "void"
    # The certificate route now serves the revocation, naming the certificate it revokes.
    r = await client.get(f"/v1/assets/{asset['id']}/certificate")
    assert r.status_code == 200, r.text
    revocation = r.json()["document"]
    assert revocation["registration_number"] == asset["registration_number"]
    assert len(revocation["revoked_certificate_sha256"]) == 64
    assert "asset.revoked" in await entry_types(client, asset["id"])


async def test_a_suspended_account_may_read_but_not_act(client, parties: Parties, regulator, settings) -> None:
    p = await provider(client, parties)
    await act(client, settings, regulator, accounts.set_suspended, p.id, True, "fraud report")
    assert (await client.get("/v1/accounts/me", headers=p.auth)).json()["suspended"] is True
    assert_problem(await client.post("/v1/assets", json={"title": "x"}, headers=p.auth), 403, "account-inactive")
    await act(client, settings, regulator, accounts.set_suspended, p.id, False, "cleared")
    assert (await client.get("/v1/accounts/me", headers=p.auth)).json()["suspended"] is False
    r = await client.get("/v1/ledger/entries", params={"subject": f"account:{p.id}"})
    types = [i["entry"]["type"] for i in r.json()["items"]]
    assert types[-2:] == ["account.suspended", "account.reinstated"]


async def test_anonymous_lists_show_every_move_at_once(client, parties: Parties, operator, regulator,
                                                       settings) -> None:
    """Anonymous asset lists are answered from memory; every state machine move (a Core
    UPDATE) and every regulator's act must empty that memory before the next request."""
    holder = await provider(client, parties)
    asset = await registered_asset(client, holder, operator)

    async def anonymous_view() -> dict[str, Any]:
        r = await client.get("/v1/assets", params={"provider": holder.id})
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        return item

    assert (await anonymous_view())["frozen"] is False
    await act(client, settings, regulator, review.set_frozen, asset["id"], True, "check")
    assert (await anonymous_view())["frozen"] is True
    await act(client, settings, regulator, review.set_frozen, asset["id"], False, "done")
    r = await client.post(f"/v1/assets/{asset['id']}/cancellation", json={"reason": "x"}, headers=holder.auth)
    assert r.status_code == 200, r.text
    assert (await anonymous_view())["status"] == "cancelled"


async def test_a_rolled_back_savepoint_does_not_hide_the_transactions_other_changes(client, parties: Parties,
                                                                                   operator) -> None:
    """The clock task registers due assets one savepoint each; one that loses its race
    is rolled back to its savepoint. The changes committed around it must still empty
    the remembered anonymous lists."""
    from sqlalchemy import update

    from market.registry.models import Asset

    holder = await provider(client, parties)
    asset = await registered_asset(client, holder, operator)
    state = client.app.state.services

    async def view() -> dict[str, Any]:
        r = await client.get("/v1/assets", params={"provider": holder.id})
        return r.json()["items"][0]

    assert (await view())["title"] == asset["title"]  # now remembered

    async def change_then_lose_a_savepoint() -> None:
        async with state.sessionmaker() as session:
            await session.execute(update(Asset).where(Asset.id == asset["id"]).values(title="renamed"))
            try:
                async with session.begin_nested():
                    await session.execute(update(Asset).where(Asset.id == asset["id"]).values(format="x"))
                    raise RuntimeError("this one lost its race")
            except RuntimeError:
                pass
            await session.commit()

    client.blocking_portal.call(change_then_lose_a_savepoint)
    assert (await view())["title"] == "renamed"
