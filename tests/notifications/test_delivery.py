"""Webhook delivery (Standard Webhooks): signatures, retries with one webhook-id, one
failing event not holding back another, disabling after the schedule, nothing sent
for refused or rolled-back changes, the ping test."""

import asyncio
from typing import Any

from sqlalchemy import text
from standardwebhooks import Webhook

from market.core import db
from market.core.context import Ctx
from market.core.outbox import Recipient, notify
from market.core.types import utcnow
from market.notifications import dispatch
from tests.conftest import assert_problem, random_uscc
from tests.notifications.support import Receiver, eventually, hook, inbox, own_app, quiet, wait_event

SIGNUP = "account.verification_requested"


def verified_body(received: Any, secret: str) -> dict[str, Any]:
    """The body, once its signature verifies with the Standard Webhooks library."""
    return dict(Webhook(secret).verify(received.body, received.headers))


async def test_retries_keep_the_webhook_id_and_every_attempt_verifies(fast: Any, receiver: Receiver) -> None:
    client, parties = fast.client, fast.parties
    watcher = await parties.staff("operator")
    made = await hook(client, watcher, receiver.url("/retry"), [SIGNUP])
    receiver.fail["/retry"] = 2  # two failures, then the third attempt (the schedule's last) succeeds
    newcomer = await parties.sign_up(["buyer"])

    async def three() -> Any:
        got = [r for r in receiver.at("/retry") if r.json["data"]["subject"] == newcomer.id]
        return got if len(got) >= 3 else None

    attempts = await eventually(three)
    await quiet(client, 0.4)
    attempts = [r for r in receiver.at("/retry") if r.json["data"]["subject"] == newcomer.id]
    assert len(attempts) == 3  # delivered on the third: no more
    assert len({r.id for r in attempts}) == 1 and attempts[0].id.startswith("evt_")
    for r in attempts:
        body = verified_body(r, made["secret"])
        assert body["type"] == SIGNUP and body["data"]["account"] == newcomer.id
        assert set(body) == {"type", "timestamp", "data"}
        assert r.headers["webhook-signature"].startswith("v1,") and r.headers["webhook-timestamp"].isdigit()
    assert attempts[1].at - attempts[0].at >= 0.04 and attempts[2].at - attempts[1].at >= 0.09

    async def logged() -> Any:
        r = await client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=watcher.auth)
        items = [d for d in r.json()["items"] if d["event_id"] == attempts[0].id]
        return items if len(items) == 3 else None

    log = await eventually(logged)
    assert [d["attempt"] for d in log] == [3, 2, 1]  # newest first
    assert [d["status_code"] for d in log] == [204, 500, 500]
    assert log[0]["next_attempt_at"] is None and log[1]["next_attempt_at"] and log[2]["next_attempt_at"]
    assert all(d["status"] == "delivered" and d["event"] == SIGNUP for d in log)
    # the operator's inbox has it once, whatever the retries
    assert [n["subject"] for n in await inbox(client, watcher)].count(newcomer.id) == 1


async def test_failing_event_does_not_hold_back_another_then_the_endpoint_is_disabled(
        databases: Any, tmp_path_factory: Any, receiver: Receiver) -> None:
    async with own_app(databases, tmp_path_factory.mktemp("disable"), webhook_allow_private=True,
                       webhook_retry_schedule="2s,1s", notify_interval=0.05) as app:
        client, parties = app.client, app.parties
        watcher = await parties.staff("operator")
        made = await hook(client, watcher, receiver.url("/stuck"), [SIGNUP])
        stuck = await parties.sign_up(["buyer"])
        stuck_too: list[str] = []  # a second failing event, still waiting for a retry when the endpoint goes
        receiver.refuse = lambda r: r.path == "/stuck" and r.json["data"]["subject"] in {stuck.id, *stuck_too}
        try:
            def of(party: Any) -> list[Any]:
                return [r for r in receiver.at("/stuck") if r.json["data"]["subject"] == party.id]

            await eventually(lambda: asyncio.sleep(0, of(stuck)))
            fine = await parties.sign_up(["buyer"])  # after the first failure of the stuck one
            await eventually(lambda: asyncio.sleep(0, of(fine)))
            # not held behind the stuck event: delivered before its retry (due 2s after its failure)
            assert len(of(stuck)) == 1
            second = await parties.sign_up(["buyer"])
            stuck_too.append(second.id)
            await eventually(lambda: asyncio.sleep(0, of(second)))
            # the stuck one: retried after 2s and 1s with the same id, then the endpoint is disabled
            notice = await wait_event(client, watcher, "webhook.disabled", made["id"], seconds=20)
            sent_until_disabled = len(receiver.at("/stuck"))
            tries = of(stuck)
            assert len(tries) == 3 and len({t.id for t in tries}) == 1
            assert tries[1].at - tries[0].at >= 1.9 and tries[2].at - tries[1].at >= 0.9
            assert notice["data"]["webhook"] == made["id"] and notice["data"]["url"] == receiver.url("/stuck")
            endpoint = (await client.get(f"/v1/webhooks/{made['id']}", headers=watcher.auth)).json()
            assert endpoint["enabled"] is False and endpoint["disabled_at"] and endpoint["disabled_reason"]
            later = await parties.sign_up(["buyer"])
            await wait_event(client, watcher, SIGNUP, later.id)
            await quiet(client, 0.5)
            await asyncio.sleep(1.2)  # past the 1s retry the second event still had due, if it had one
            assert of(later) == []  # a disabled endpoint gets nothing: no new event,
            assert len(receiver.at("/stuck")) == sent_until_disabled  # and no retry of a pending one
            # ... and nothing of it is left waiting: what it had pending ended with it
            engine = db.make_engine(app.parties.settings.sqlalchemy_url)
            try:
                async with engine.connect() as conn:
                    waiting = (await conn.execute(text(
                        "SELECT count(*) FROM webhook_messages WHERE endpoint_id = :e AND status = 'pending'"),
                        {"e": made["id"]})).scalar()
            finally:
                await engine.dispose()
            assert waiting == 0
            # only the owner is told
            assert "webhook.disabled" not in [n["event"] for n in await inbox(client, app.operator)]
        finally:
            receiver.refuse = None


async def test_nothing_is_sent_for_refused_or_rolled_back_changes(fast: Any, receiver: Receiver) -> None:
    client, parties = fast.client, fast.parties
    watcher = await parties.staff("operator")
    await hook(client, watcher, receiver.url("/refused"), ["*"])
    uscc = random_uscc()
    kept = await parties.sign_up(["buyer"], uscc=uscc)
    r = await client.post("/v1/accounts", json={"name": "Again", "kind": "enterprise", "roles": ["buyer"],
                                                "uscc": uscc})
    assert_problem(r, 409)
    r = await client.post("/v1/accounts", json={"name": "Bad", "kind": "enterprise", "roles": ["buyer"],
                                                "uscc": "not-a-code"})
    assert_problem(r, 422)
    # a notice written in a transaction that rolls back
    # (on a connection of its own: the app's writer belongs to the app's event loop)
    services = client.app.state.services
    engine = db.make_engine(services.settings.sqlalchemy_url)
    try:
        async with db.make_sessionmaker(engine)() as session:
            ctx = Ctx.system(services)
            await notify(session, ctx, SIGNUP, "acct_rolled_back", [Recipient(role="operator", data={})])
            await session.flush()
            await session.rollback()
    finally:
        await engine.dispose()
    await wait_event(client, watcher, SIGNUP, kept.id)
    await quiet(client, 0.5)
    subjects = [n["subject"] for n in await inbox(client, watcher)]
    assert subjects.count(kept.id) == 1 and "acct_rolled_back" not in subjects
    sent = [r.json["data"]["subject"] for r in receiver.at("/refused")]
    assert sent.count(kept.id) == 1 and "acct_rolled_back" not in sent
    assert len(sent) == len(set(r.id for r in receiver.at("/refused")))


async def test_ping_is_sent_now_and_logged(fast: Any, receiver: Receiver) -> None:
    client, owner = fast.client, await fast.parties.verified(["buyer"])
    made = await hook(client, owner, receiver.url("/ping"), ["order.*"])
    r = await client.post(f"/v1/webhooks/{made['id']}/test", headers=owner.auth)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["delivered"] is True and result["status_code"] == 204
    got = receiver.at("/ping")
    assert len(got) == 1 and got[0].id == result["event_id"]
    body = verified_body(got[0], made["secret"])
    assert body["type"] == "ping" and body["data"]["webhook"] == made["id"]
    log = (await client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=owner.auth)).json()["items"]
    assert [(d["event_id"], d["event"], d["status_code"], d["status"]) for d in log] == \
        [(result["event_id"], "ping", 204, "delivered")]
    assert "ping" not in [n["event"] for n in await inbox(client, owner)]  # webhooks only
    await quiet(client, 0.3)
    assert len(receiver.at("/ping")) == 1  # the sender does not send it again
    # a receiver that is down: reported, not an error of the route
    dead = await hook(client, owner, "http://127.0.0.1:9/down", ["order.*"])
    r = await client.post(f"/v1/webhooks/{dead['id']}/test", headers=owner.auth)
    assert r.status_code == 200 and r.json()["delivered"] is False and r.json()["error"]


async def test_the_dispatcher_dispatches_each_row_once(fast: Any) -> None:
    """Dispatchers at once (as processes would; half of them reading their batch before
    their write transaction, as the worker does): every event told once."""
    client, parties = fast.client, fast.parties
    watcher = await parties.staff("operator")
    settings = parties.settings
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        maker, reader = db.make_sessionmaker(engine), db.make_read_sessionmaker(engine)
        made = [await parties.sign_up(["buyer"]) for _ in range(5)]
        await asyncio.gather(*(dispatch.dispatch_once(maker, utcnow, reader=reader if i % 2 else None)
                               for i in range(4)))
    finally:
        await engine.dispose()
    for party in made:
        await wait_event(client, watcher, SIGNUP, party.id)
    await quiet(client, 0.3)
    subjects = [n["subject"] for n in await inbox(client, watcher)]
    assert all(subjects.count(p.id) == 1 for p in made)
