"""The inbox and webhook routes (docs/API.md "Notifications and webhooks"): shapes, owners,
404 for others' ids, the address rule, idempotency, mark-read semantics."""

import secrets
from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.notifications.support import Receiver, hook, inbox, wait_event


async def test_webhook_lifecycle_and_secret_shown_once(fast: Any, receiver: Receiver) -> None:
    client, parties = fast.client, fast.parties
    owner = await parties.verified(["buyer"])
    made = await hook(client, owner, receiver.url("/life"), ["order.*", "dispute.opened"])
    assert made["id"].startswith("whk_") and made["secret"].startswith("whsec_")
    assert made["events"] == ["order.*", "dispute.opened"] and made["enabled"] is True
    r = await client.get(f"/v1/webhooks/{made['id']}", headers=owner.auth)
    assert r.status_code == 200 and "secret" not in r.json() and r.json()["url"] == receiver.url("/life")
    listed = (await client.get("/v1/webhooks", headers=owner.auth)).json()
    assert [w["id"] for w in listed["items"]] == [made["id"]] and listed["next_cursor"] is None
    assert all("secret" not in w for w in listed["items"])
    r = await client.delete(f"/v1/webhooks/{made['id']}", headers=owner.auth)
    assert r.status_code == 204
    assert_problem(await client.get(f"/v1/webhooks/{made['id']}", headers=owner.auth), 404)


async def test_other_accounts_get_404_on_every_id_route(fast: Any, receiver: Receiver) -> None:
    client, parties = fast.client, fast.parties
    owner, other = await parties.verified(["buyer"]), await parties.verified(["provider"])
    made = await hook(client, owner, receiver.url("/mine"))
    base = f"/v1/webhooks/{made['id']}"
    for method, path in [("GET", base), ("DELETE", base), ("GET", f"{base}/deliveries"), ("POST", f"{base}/test")]:
        r = await client.request(method, path, headers=other.auth)
        assert_problem(r, 404)
        # staff see no one's endpoints either
        assert_problem(await client.request(method, path, headers=fast.operator.auth), 404)
    assert (await client.get("/v1/webhooks", headers=other.auth)).json()["items"] == []
    assert (await client.get(base, headers=owner.auth)).status_code == 200  # untouched
    assert_problem(await client.get("/v1/webhooks/whk_nothing", headers=owner.auth), 404)


async def test_unknown_events_and_bad_urls_are_422(fast: Any, receiver: Receiver) -> None:
    client, parties = fast.client, fast.parties
    owner = await parties.verified(["buyer"])
    for events in (["order.shipped"], ["orders.*"], [], ["order.*", "nope"]):
        r = await client.post("/v1/webhooks", json={"url": receiver.url("/x"), "events": events}, headers=owner.auth)
        assert_problem(r, 422)
    for url in ("ftp://example.com/hook", "example.com/hook", "http://", "javascript:alert(1)",
                "http://user:pw@example.com/"):
        r = await client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=owner.auth)
        assert_problem(r, 422)
    assert (await client.get("/v1/webhooks", headers=owner.auth)).json()["items"] == []


async def test_only_verified_accounts_register_webhooks(fast: Any, receiver: Receiver) -> None:
    pending = await fast.parties.sign_up(["buyer"])
    r = await fast.client.post("/v1/webhooks", json={"url": receiver.url("/p"), "events": ["*"]}, headers=pending.auth)
    assert_problem(r, 403)
    r = await fast.client.post("/v1/webhooks", json={"url": receiver.url("/p"), "events": ["*"]})
    assert_problem(r, 401)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "https://10.1.2.3/hook", "http://192.168.0.10/",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook", "http://[fe80::1]/",
    "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://2130706433/",
])
async def test_private_and_loopback_addresses_are_refused(client: Any, parties: Any, url: str) -> None:
    """The shared app has the default MARKET_WEBHOOK_ALLOW_PRIVATE=false."""
    owner = await parties.verified(["buyer"])
    r = await client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=owner.auth)
    body = assert_problem(r, 422)
    assert "not allowed" in body["detail"]


async def test_public_address_is_accepted_without_the_setting(client: Any, parties: Any) -> None:
    owner = await parties.verified(["buyer"])
    r = await client.post("/v1/webhooks", json={"url": "https://93.184.215.14/hooks/market", "events": ["order.*"]},
                          headers=owner.auth)
    assert r.status_code == 201, r.text


async def test_private_addresses_allowed_with_the_setting(fast: Any) -> None:
    owner = await fast.parties.verified(["buyer"])
    made = await hook(fast.client, owner, "http://127.0.0.1:9/hook")
    assert made["url"] == "http://127.0.0.1:9/hook"


async def test_idempotency_key_replays_the_creation(fast: Any, receiver: Receiver) -> None:
    client, owner = fast.client, await fast.parties.verified(["buyer"])
    key = {"Idempotency-Key": secrets.token_hex(16)}
    first = await hook(client, owner, receiver.url("/idem"), ["order.*"], **key)
    again = await hook(client, owner, receiver.url("/idem"), ["order.*"], **key)
    assert again == first  # the same endpoint, secret included
    r = await client.post("/v1/webhooks", json={"url": receiver.url("/idem"), "events": ["dispute.*"]},
                          headers={**owner.auth, **key})
    assert_problem(r, 409)
    assert len((await client.get("/v1/webhooks", headers=owner.auth)).json()["items"]) == 1


async def test_inbox_paging_unread_and_mark_read(fast: Any) -> None:
    client, parties, operator = fast.client, fast.parties, fast.operator
    # each sign-up tells the operators (account.verification_requested)
    watcher = await parties.staff("operator")
    made = [await parties.sign_up(["buyer"]) for _ in range(3)]
    for party in made:
        await wait_event(client, watcher, "account.verification_requested", party.id)
    items = [n for n in await inbox(client, watcher) if n["event"] == "account.verification_requested"]
    assert [n["subject"] for n in items][:3] == [p.id for p in reversed(made)]  # newest first
    n = items[0]
    assert set(n) >= {"id", "event", "subject", "created_at", "read_at", "data"} and n["id"].startswith("ntf_")
    assert n["read_at"] is None and n["data"]["account"] == made[-1].id
    # paging
    r = await client.get("/v1/notifications", params={"limit": 2}, headers=watcher.auth)
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    r = await client.get("/v1/notifications", params={"limit": 2, "cursor": page["next_cursor"]}, headers=watcher.auth)
    assert r.json()["items"][0]["id"] == items[2]["id"]
    # others' ids do not count, nor do they get marked
    other_items = await inbox(client, operator)
    r = await client.post("/v1/notifications/read", json={"ids": [items[0]["id"], other_items[0]["id"], "ntf_x"]},
                          headers=watcher.auth)
    assert r.status_code == 200 and r.json() == {"marked": 1}
    assert (await inbox(client, operator))[0]["read_at"] is None
    r = await client.post("/v1/notifications/read", json={"ids": [items[0]["id"]]}, headers=watcher.auth)
    assert r.json() == {"marked": 0}  # already read
    unread = await inbox(client, watcher, unread="true")
    assert items[0]["id"] not in [u["id"] for u in unread] and items[1]["id"] in [u["id"] for u in unread]
    r = await client.post("/v1/notifications/read", json={"all": True}, headers=watcher.auth)
    assert r.json() == {"marked": len(unread)}
    assert await inbox(client, watcher, unread="true") == []
    assert all(n["read_at"] is not None for n in await inbox(client, watcher))
    for bad in ({}, {"ids": ["a"], "all": True}, {"all": False}, {"all": "yes"}):
        assert_problem(await client.post("/v1/notifications/read", json=bad, headers=watcher.auth), 422)
    assert_problem(await client.get("/v1/notifications"), 401)


def _resolving(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """``name`` resolves to ``address`` from now on (every other name as before)."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def test_a_name_that_turns_private_after_registration_is_not_sent_to(
        client: Any, parties: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name pointed at a public address when the endpoint was
    registered and points at loopback (where the receiver listens) when a delivery goes
    out. The address is checked again when connecting, so nothing reaches the receiver."""
    owner = await parties.verified(["buyer"])
    port = receiver.url("/").split(":")[2].split("/")[0]
    _resolving(monkeypatch, "hooks.example.test", "93.184.215.14")
    r = await client.post("/v1/webhooks", json={"url": f"http://hooks.example.test:{port}/rebound",
                                                "events": ["*"]}, headers=owner.auth)
    assert r.status_code == 201, r.text
    _resolving(monkeypatch, "hooks.example.test", "127.0.0.1")
    r = await client.post(f"/v1/webhooks/{r.json()['id']}/test", headers=owner.auth)
    assert r.status_code == 200, r.text
    assert r.json()["delivered"] is False and "no public address" in r.json()["error"], r.json()
    assert receiver.at("/rebound") == []


async def test_the_resolver_keeps_only_public_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    from market.notifications.sender import PublicResolver

    resolver = PublicResolver()
    try:
        with pytest.raises(OSError, match="no public address"):
            await resolver.resolve("localhost", 80)
        _resolving(monkeypatch, "public.example.test", "93.184.215.14")
        found = await resolver.resolve("public.example.test", 443)
        assert [r["host"] for r in found] == ["93.184.215.14"]
    finally:
        await resolver.close()
