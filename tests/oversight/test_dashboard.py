"""The regulator's dashboard over HTTP (docs/API.md ``GET /oversight``): sign-in by signing a
challenge with the enrolled key into a server-side session, every page in Chinese and
English, CSRF on every form, forms that carry signed acts and do what the JSON API does
(the same ledger entries), and a sign-out that ends the session on the server."""

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import AsyncTestClient
from sqlmodel import select

from market.oversight import dashboard
from market.oversight.alerts import evaluate_once
from market.oversight.models import OversightAction
from market.registry.models import Asset
from market.web.app import create_app
from market.wiring.bootstrap import create_staff_account
from tests.conftest import Parties, Party, make_settings
from tests.registry_support import ledger_items
from tests.regulator_acts import public_key_of, sign
from tests.trading.support import buyer, offer, place

HTTPS = "https://market.test"
LOOPBACK = "http://127.0.0.1"


@dataclass
class Market:
    client: AsyncTestClient
    parties: Parties
    operator: Party
    regulator: Party
    state: Any


@pytest.fixture(scope="module")
async def market(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Market]:
    """A market of its own (its cookie jar is this module's), served as https."""
    settings = make_settings(tmp_path_factory.mktemp("dashboard"), await databases.new())
    token = await create_staff_account(settings, "Operator", "operator")
    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url=HTTPS) as client:
        r = await client.get("/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
        operator = Party(r.json()["id"], token, r.json())
        parties = Parties(client, settings, operator)
        yield Market(client, parties, operator, await parties.staff("regulator"), app.state.services)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def challenge_of(html: str) -> bytes:
    found = re.search(r'data-challenge="([^"]+)"', html)
    assert found, "no challenge on the sign-in page"
    return base64.b64decode(found.group(1))


async def sign_in(client: AsyncTestClient, who: Party | Ed25519PrivateKey, base: str = HTTPS) -> Any:
    """What the page's script does: open the sign-in page (its pre-session cookie and
    challenge), sign the challenge with the key, post the public key and the signature."""
    key = who.key if isinstance(who, Party) else who
    client.cookies.clear()
    page = await client.get(f"{base}/oversight")
    assert page.status_code == 200 and 'action="/oversight/session"' in page.text
    form = {"csrf": csrf_of(page.text), "public_key": public_key_of(key),
            "signature": base64.b64encode(key.sign(challenge_of(page.text))).decode()}
    return await client.post(f"{base}/oversight/session", data=form, follow_redirects=False)


async def signed(client: AsyncTestClient, m: "Market", csrf: str, kind: str, body: dict[str, Any]) -> dict[str, str]:
    """What the page's script does on submit: draft through the dashboard, sign in the page."""
    r = await client.post("/oversight/acts/draft", json={"kind": kind, **body}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    drafted = r.json()["signing_bytes"]
    return {"csrf": csrf, "signing_bytes": drafted, "key_id": m.regulator.key_id or "",
            "signature": sign(m.regulator.key, drafted)}


async def read(state: Any, model: Any, key: str) -> Any:
    async with state.read_sessionmaker() as session:
        return await session.get(model, key)


async def actions_on(state: Any, target: str) -> list[OversightAction]:
    async with state.read_sessionmaker() as session:
        return list((await session.exec(select(OversightAction).where(OversightAction.target == target))).all())


def set_cookie(response: Any, name: str) -> str:
    headers = [v for k, v in response.headers.multi_items() if k.lower() == "set-cookie" and v.startswith(name + "=")]
    assert len(headers) == 1, response.headers
    return headers[0]


async def test_sign_in_refuses_unknown_keys_and_non_regulators(market: Market) -> None:
    client = market.client
    r = await sign_in(client, Ed25519PrivateKey.generate())
    assert r.status_code == 401 and "密钥未登记" in r.text and "not an enrolled regulator key" in r.text
    assert dashboard.COOKIE not in client.cookies
    # A party's registered key is not an enrolled regulator key.
    provider = await market.parties.verified(["provider"])
    own = Ed25519PrivateKey.generate()
    r = await client.post("/v1/accounts/me/keys", json={"public_key": public_key_of(own)}, headers=provider.auth)
    assert r.status_code == 201, r.text
    r = await sign_in(client, own)
    assert r.status_code == 401 and dashboard.COOKIE not in client.cookies
    # The regulator's key over another challenge (a replayed signature) does not sign in.
    client.cookies.clear()
    page = await client.get("/oversight")
    stale = base64.b64encode(market.regulator.key.sign(b"another challenge")).decode()
    r = await client.post("/oversight/session", data={"csrf": csrf_of(page.text), "signature": stale,
                                                      "public_key": public_key_of(market.regulator.key)})
    assert r.status_code == 401 and dashboard.COOKIE not in client.cookies
    # No session: every page leads back to sign-in; nothing is shown.
    for page_path in ("/oversight/alerts", "/oversight/actions", "/oversight/ledger"):
        r = await client.get(page_path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/oversight"
    # A sign-in form without its CSRF field (or from another site) is refused.
    client.cookies.clear()
    page = await client.get("/oversight")
    r = await client.post("/oversight/session", data={"public_key": public_key_of(market.regulator.key),
                                                      "signature": sign(market.regulator.key, base64.b64encode(
                                                          challenge_of(page.text)).decode())})
    assert r.status_code == 403 and dashboard.COOKIE not in client.cookies


async def test_session_cookie_flags(market: Market) -> None:
    client = market.client
    r = await sign_in(client, market.regulator)
    assert r.status_code == 303 and r.headers["location"] == "/oversight"
    cookie = set_cookie(r, dashboard.COOKIE)
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite"} <= flags, cookie
    assert "SameSite=Strict".lower() in cookie.lower() and "Path=/oversight" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert market.regulator.token not in value and market.regulator.id not in value  # a random id only
    # A changed cookie is no session.
    client.cookies.clear()
    client.cookies.set(dashboard.COOKIE, ("A" if value[0] != "A" else "B") + value[1:], path="/oversight")
    r = await client.get("/oversight")
    assert 'action="/oversight/session"' in r.text
    # Over plain http on loopback there is no Secure flag (local use); elsewhere no sign-in.
    r = await sign_in(client, market.regulator, LOOPBACK)
    assert r.status_code == 303
    assert "secure" not in set_cookie(r, dashboard.COOKIE).lower()
    r = await sign_in(client, market.regulator, "http://market.test")
    assert r.status_code == 403 and "HTTPS" in r.text
    client.cookies.clear()


async def test_every_page_renders_with_both_languages(market: Market) -> None:
    m, client = market, market.client
    _, listing = await offer(client, m.parties, m.operator, asset={"personal_info": "identifiable",
                                                                   "legal_basis": "个人信息主体的单独同意"})
    _, important = await offer(client, m.parties, m.operator, asset={"grade": "important"})
    who = await buyer(client, m.parties)
    await place(client, who, listing)
    waiting = await place(client, who, important)
    client.blocking_portal.call(evaluate_once, m.state)  # the app runs on the client's own loop
    assert (await sign_in(client, m.regulator)).status_code == 303
    pages = {
        "/oversight": ["成交额 Value", "按日成交量 Orders by day", "按类别成交量 Orders by category",
                       "按分级成交量 Orders by grade", "按地区成交量 Orders by region", "<svg", "<rect"],
        "/oversight/alerts": ["预警", "Alerts", "identifiable_pi_sale", "关闭 Close"],
        "/oversight/approvals": ["审批", "Approvals", waiting["id"], "批准 Approve"],
        "/oversight/refusals": ["拒绝记录 Refusals", "Refused attempts"],
        "/oversight/actions": ["监管措施 Actions", "冻结资产 Freeze asset"],
        "/oversight/ledger": ["账本状态 Ledger", "条目数 Size", "Signed checkpoint"],
    }
    for path, labels in pages.items():
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script src=\"/oversight/static/dashboard.js\"" in r.text and "<script>" not in r.text
        for label in labels:
            assert label in r.text, (path, label)
        # Everything the page loads comes from the market itself.
        assert not re.search(r'(src|href)="(https?:)?//', r.text), path
    css = await client.get("/oversight/static/dashboard.css")
    assert css.status_code == 200 and '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif' in css.text
    assert "@font-face" not in css.text and "url(" not in css.text
    js = await client.get("/oversight/static/dashboard.js")
    assert js.status_code == 200 and 'crypto.subtle.sign({ name: "Ed25519" }' in js.text


async def test_a_form_without_its_csrf_token_changes_nothing(market: Market) -> None:
    m, client = market, market.client
    _, listing = await offer(client, m.parties, m.operator)
    assert (await sign_in(client, m.regulator)).status_code == 303
    csrf = csrf_of((await client.get("/oversight/actions")).text)
    form = await signed(client, m, csrf, "action", {"action": "freeze_asset", "target": listing["asset_id"],
                                                    "reason": "checking a complaint"})
    form.pop("csrf")
    for extra, headers in (({}, {}), ({"csrf": "forged"}, {}), ({"csrf": csrf}, {"Origin": "https://evil.example"})):
        r = await client.post("/oversight/actions", data={**form, **extra}, headers=headers)
        assert r.status_code == 403 and "CSRF" in r.text
    # The draft route checks its header too.
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}):
        r = await client.post("/oversight/acts/draft", json={"kind": "action", "action": "freeze_asset",
                                                              "target": listing["asset_id"], "reason": "x"},
                              headers=headers)
        assert r.status_code == 403, r.text
    asset = client.blocking_portal.call(read, m.state, Asset, listing["asset_id"])
    assert asset is not None and not asset.frozen
    assert client.blocking_portal.call(actions_on, m.state, asset.id) == []
    assert [i for i in await ledger_items(client, listing["asset_id"]) if i["entry"]["type"] == "asset.frozen"] == []


async def test_freezing_an_asset_from_the_form(market: Market) -> None:
    m, client = market, market.client
    _, listing = await offer(client, m.parties, m.operator)
    assert (await sign_in(client, m.regulator)).status_code == 303
    page = await client.get("/oversight/actions")
    token = csrf_of(page.text)
    reason = "核查投诉 checking a complaint"
    body = {"action": "freeze_asset", "target": listing["asset_id"], "reason": reason}
    # A form without a signed act (no script ran) is refused and changes nothing.
    r = await client.post("/oversight/actions", headers={"Origin": HTTPS}, data={**body, "csrf": token})
    assert r.status_code == 422 and "signed act" in r.text
    r = await client.post("/oversight/actions", follow_redirects=False, headers={"Origin": HTTPS},
                          data={**await signed(client, m, token, "action", body), "target": listing["asset_id"]})
    assert r.status_code == 303, r.text
    shown = await client.get(r.headers["location"])
    assert listing["asset_id"] in shown.text and "freeze_asset" in shown.text
    asset = (await client.get(f"/v1/assets/{listing['asset_id']}", headers=m.regulator.auth)).json()
    assert asset["frozen"] is True
    # The same entries as POST /v1/oversight/actions: the effect and the action itself.
    [frozen] = [i for i in await ledger_items(client, listing["asset_id"]) if i["entry"]["type"] == "asset.frozen"]
    assert frozen["entry"]["actor"] == m.regulator.id and reason not in str(frozen)
    [action] = client.blocking_portal.call(actions_on, m.state, asset["id"])
    assert action.actor_id == m.regulator.id and action.entry_sha256
    [recorded] = await ledger_items(client, action.id, kind="action")
    assert recorded["entry"]["type"] == "oversight.action"
    # Gone from search; a second freeze is refused on the page and changes nothing.
    found = (await client.get("/v1/listings", params={"q": listing["title"]})).json()["items"]
    assert listing["id"] not in [x["id"] for x in found]
    r = await client.post("/oversight/actions", data=await signed(client, m, token, "action", body))
    assert r.status_code == 409 and "already frozen" in r.text


async def test_closing_an_alert_and_deciding_an_approval(market: Market) -> None:
    m, client = market, market.client
    _, listing = await offer(client, m.parties, m.operator, asset={"personal_info": "identifiable",
                                                                   "legal_basis": "个人信息主体的单独同意"})
    _, important = await offer(client, m.parties, m.operator, asset={"grade": "important"})
    who = await buyer(client, m.parties)
    sold = await place(client, who, listing)
    waiting = await place(client, who, important)
    client.blocking_portal.call(evaluate_once, m.state)  # the app runs on the client's own loop
    alerts = (await client.get("/v1/oversight/alerts", params={"status": "open", "limit": 500},
                               headers=m.regulator.auth)).json()["items"]
    [alert] = [a for a in alerts if sold["id"] in a["subjects"] and a["rule"] == "identifiable_pi_sale"]
    assert (await sign_in(client, m.regulator)).status_code == 303
    token = csrf_of((await client.get("/oversight/alerts")).text)
    r = await client.post(f"/oversight/alerts/{alert['id']}/closure",
                          data=await signed(client, m, token, "alert_closure",
                                            {"alert": alert["id"], "reason": "consent checked"}))
    assert r.status_code == 200 and alert["id"] in r.text  # followed to the alerts page with a notice
    closed = (await client.get("/v1/oversight/alerts", params={"status": "closed", "limit": 500},
                               headers=m.regulator.auth)).json()["items"]
    assert alert["id"] in [a["id"] for a in closed]
    r = await client.post(f"/oversight/approvals/{waiting['id']}",
                          data=await signed(client, m, token, "approval",
                                            {"order": waiting["id"], "decision": "approve", "reason": "ok"}))
    assert r.status_code == 200
    order = (await client.get(f"/v1/orders/{waiting['id']}", headers=who.auth)).json()
    assert order["approvals"]["regulator"] == "approved" and order["status"] == "active"


async def test_sign_out_ends_the_session_on_the_server(market: Market) -> None:
    m, client = market, market.client
    _, listing = await offer(client, m.parties, m.operator)
    assert (await sign_in(client, m.regulator)).status_code == 303
    saved = client.cookies.get(dashboard.COOKIE, path="/oversight")
    assert saved
    token = csrf_of((await client.get("/oversight")).text)
    form = await signed(client, m, token, "action", {"action": "freeze_asset", "target": listing["asset_id"],
                                                     "reason": "after sign-out"})
    r = await client.post("/oversight/session/end", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and "Max-Age=0" in set_cookie(r, dashboard.COOKIE)
    assert 'action="/oversight/session"' in (await client.get("/oversight")).text
    # The saved cookie, sent again, is no session: no page, no draft, no action.
    client.cookies.clear()
    client.cookies.set(dashboard.COOKIE, saved, path="/oversight")
    assert 'action="/oversight/session"' in (await client.get("/oversight")).text
    r = await client.get("/oversight/actions", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/oversight"
    r = await client.post("/oversight/acts/draft", json={"kind": "action", "action": "freeze_asset",
                                                          "target": listing["asset_id"], "reason": "x"},
                          headers={"X-CSRF-Token": token})
    assert r.status_code == 401
    r = await client.post("/oversight/actions", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/oversight"
    asset = (await client.get(f"/v1/assets/{listing['asset_id']}", headers=m.regulator.auth)).json()
    assert asset["frozen"] is False
    client.cookies.clear()


async def test_revoking_the_key_ends_the_session(market: Market) -> None:
    m, client = market, market.client
    other = await m.parties.regulator()
    assert (await sign_in(client, other)).status_code == 303
    assert "总览" in (await client.get("/oversight")).text
    assert (await client.delete(f"/v1/accounts/me/keys/{other.key_id}", headers=other.auth)).status_code == 204
    assert 'action="/oversight/session"' in (await client.get("/oversight")).text
    assert (await sign_in(client, other)).status_code == 401
    client.cookies.clear()
