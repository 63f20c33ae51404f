"""Transfer processes, provider side: the conformance kit's 16 mandatory scenarios
(eclipse-dataspacetck/dsp-tck, TransferProcessProvider01–03Test), each driven on the
provider's side by what really moves a transfer here — the market starting it, the
consumer pulling the whole content with its token (completed), a regulator freezing the
asset (suspended) and lifting the freeze (started again), a refund after a dispute or a
revoked registration (terminated), a second transfer waiting behind a started one
(REQUESTED) — and the pulled bytes, ranges, tokens, messages and ledger steps around them."""

import asyncio
import base64
import hashlib
import json
import os
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlmodel import col

from ledger import merkle
from market.core.audit import TradeDocument
from market.core.context import Ctx
from market.dsp.models import DspCallback
from market.trading import settlement
from market.trading.models import Order
from tests.dsp import support
from tests.dsp.support import BASE, CONTEXT, Consumer, regulator_action
from tests.listings.support import publish
from tests.notifications.support import eventually
from tests.registry_support import draft, provider, submit, upload
from tests.trading.support import FREE, ONE_TIME, buyer, take_piece
from tests.usage.support import table_asset

CHUNK = 65536
SIZE = 200 * 1024  # four chunks, the last one short
PULL = "HttpData-PULL"

def valid(message: dict[str, Any], type_: str) -> dict[str, Any]:
    """``message`` (a body the market sent) of ``type_``, checked against its vendored schema."""
    assert message["@context"] == CONTEXT and message["@type"] == type_, message
    return support.valid(message)


# -- a consumer's transfers ------------------------------------------------------------


async def content_listing(market: Any, content: bytes, plans: list[dict[str, Any]] | None = None) -> tuple[Any, Any]:
    """A registered asset holding ``content`` and its active listing: (asset, listing)."""
    client = market.client
    holder = await provider(client, market.parties)
    asset = await draft(client, holder)
    await upload(client, holder, asset["id"], content)
    await submit(client, holder, asset["id"], "holding,use,operation")
    r = await client.post(f"/v1/assets/{asset['id']}/review", json={"decision": "approve"},
                          headers=market.operator.auth)
    assert r.status_code == 200 and r.json()["status"] == "registered", r.text
    return r.json(), await publish(client, holder, asset["id"], plans=plans or [ONE_TIME, FREE])


class Deal:
    """A finalized agreement of ``c`` on content of its own, and its transfers."""

    def __init__(self, market: Any, c: Consumer, content: bytes, asset: Any, listing: Any,
                 agreement: dict[str, Any]) -> None:
        self.market, self.c, self.content, self.asset, self.listing = market, c, content, asset, listing
        self.agreement_id = str(agreement["@id"])
        self.order_id = self.agreement_id.rsplit(":", 1)[1]

    @property
    def auth(self) -> dict[str, str]:
        return dict(self.c.buyer.auth)

    async def request(self, consumer_pid: str | None = None, **fields: Any) -> tuple[str, Any]:
        pid = consumer_pid or f"urn:uuid:{secrets.token_hex(16)}"
        body = {"@context": CONTEXT, "@type": "TransferRequestMessage", "consumerPid": pid,
                "agreementId": self.agreement_id, "format": PULL, "callbackAddress": self.c.address, **fields}
        return pid, await self.c.client.post(f"{BASE}/transfers/request", json=body, headers=self.auth)

    async def requested(self) -> tuple[str, str]:
        """A new transfer answered ``201`` REQUESTED: ``(providerPid, consumerPid)``."""
        consumer_pid, r = await self.request()
        assert r.status_code == 201, r.text
        body = valid(r.json(), "TransferProcess")
        assert body["state"] == "REQUESTED" and body["consumerPid"] == consumer_pid
        assert r.headers["content-type"].startswith("application/json")
        return str(body["providerPid"]), consumer_pid

    async def started(self) -> tuple[str, str, dict[str, Any]]:
        """A transfer the market started: ``(providerPid, consumerPid, TransferStartMessage)``."""
        provider_pid, consumer_pid = await self.requested()
        start = await self.wait(consumer_pid, "/start")
        await self.wait_state(provider_pid, "STARTED")
        return provider_pid, consumer_pid, start

    def got(self, consumer_pid: str, tail: str) -> list[dict[str, Any]]:
        return [r.json for r in self.c.receiver.at(f"/cb-{self.c.buyer.id}/transfers/{consumer_pid}{tail}")]

    async def wait(self, consumer_pid: str, tail: str, count: int = 1) -> dict[str, Any]:
        """The ``count``-th message posted to ``/transfers/<consumerPid><tail>``, checked."""
        async def arrived() -> Any:
            found = self.got(consumer_pid, tail)
            return found[count - 1] if len(found) >= count else None

        message: dict[str, Any] = await eventually(arrived)
        types = {"/start": "TransferStartMessage", "/completion": "TransferCompletionMessage",
                 "/suspension": "TransferSuspensionMessage", "/termination": "TransferTerminationMessage"}
        valid(message, types[tail])
        assert message["consumerPid"] == consumer_pid
        return message

    async def state(self, provider_pid: str) -> str:
        r = await self.c.client.get(f"{BASE}/transfers/{provider_pid}", headers=self.auth)
        assert r.status_code == 200, r.text
        return str(valid(r.json(), "TransferProcess")["state"])

    async def wait_state(self, provider_pid: str, state: str) -> None:
        async def reached() -> bool:
            return await self.state(provider_pid) == state

        await eventually(reached)

    async def send(self, provider_pid: str, consumer_pid: str, tail: str, type_: str, **fields: Any) -> Any:
        body = {"@context": CONTEXT, "@type": type_, "providerPid": provider_pid, "consumerPid": consumer_pid,
                **fields}
        return await self.c.client.post(f"{BASE}/transfers/{provider_pid}{tail}", json=body, headers=self.auth)

    async def terminate(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/termination", "TransferTerminationMessage",
                               code="consumer-done", reason=["no longer needed"])

    async def suspend(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/suspension", "TransferSuspensionMessage",
                               code="consumer-paused", reason=["later"])

    async def complete(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/completion", "TransferCompletionMessage")

    async def resume(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/start", "TransferStartMessage")

    async def pull(self, start: dict[str, Any], range_: str | None = None, method: str = "GET") -> Any:
        """The data endpoint of ``start`` with its token (and ``Range``)."""
        endpoint, token = address(start)
        headers = {"Authorization": f"Bearer {token}"}
        if range_:
            headers["Range"] = range_
        return await self.c.client.request(method, urlsplit(endpoint).path, headers=headers)

    def steps(self) -> list[str]:
        """The ``dsp.transfer_*`` entries of the order, oldest first."""
        async def run() -> list[str]:
            async with self.market.client.app.state.services.read_sessionmaker() as s:
                rows = (await s.execute(select(TradeDocument.type).where(
                    TradeDocument.subject == f"order:{self.order_id}").order_by(TradeDocument.id))).scalars().all()
                return [t for t in rows if t.startswith("dsp.transfer_")]

        return self.market.client.blocking_portal.call(run)  # type: ignore[no-any-return]


def address(start: dict[str, Any]) -> tuple[str, str]:
    """The endpoint and the token of a TransferStartMessage."""
    data = start["dataAddress"]
    assert data["@type"] == "DataAddress" and data["endpointType"] == "https://w3id.org/idsa/v4.1/HTTP"
    props = {p["name"]: p["value"] for p in data["endpointProperties"]}
    assert props["authType"] == "bearer" and all(p["@type"] == "EndpointProperty" for p in data["endpointProperties"])
    assert data["endpoint"].endswith(f"{BASE}/transfers/{start['providerPid']}/data")
    return str(data["endpoint"]), str(props["authorization"])


async def deal(market: Any, c: Consumer, size: int = SIZE) -> Deal:
    content = os.urandom(size)
    asset, listing = await content_listing(market, content)
    _pid, _cpid, agreement = await c.finalized(listing, "free")
    return Deal(market, c, content, asset, listing, agreement)


def refused(r: Any, provider_pid: str | None = None, consumer_pid: str | None = None, status: int = 400) -> Any:
    """A protocol error: ``status``, a TransferError in application/json, never problem+json."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["@context"] == CONTEXT and body["@type"] == "TransferError" and body["code"] and body["reason"], body
    valid(body, "TransferError")
    if provider_pid is not None:
        assert body["providerPid"] == provider_pid
    if consumer_pid is not None:
        assert body["consumerPid"] == consumer_pid
    return body


def gets_nothing(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/invalid-transfer-token")


def repr_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


async def refund(market: Any, d: Deal) -> None:
    """The buyer disputes the order and the operator refunds it."""
    client = market.client
    r = await client.post(f"/v1/orders/{d.order_id}/disputes", json={"reason": "the file is not what was described"},
                          headers=d.auth)
    assert r.status_code == 201, r.text
    r = await client.post(f"/v1/disputes/{r.json()['id']}/resolution", headers=market.operator.auth,
                          json={"decision": "refund", "reason": "checked the file"})
    assert r.status_code == 200, r.text


# -- TP_01: transfer request, provider scenarios ----------------------------------------


async def test_TP_01_01_started_then_terminated_by_the_provider(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    assert (await d.pull(start, "bytes=0-9")).status_code == 206
    await refund(market, d)  # a refund after a dispute ends the order's access
    message = await d.wait(consumer_pid, "/termination")
    assert message["providerPid"] == provider_pid and message["code"] == "no-access" and message["reason"]
    assert await d.state(provider_pid) == "TERMINATED"
    gets_nothing(await d.pull(start))
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_terminated"]


async def test_TP_01_02_started_then_completed_by_the_provider(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    r = await d.pull(start)
    assert r.status_code == 200, r.text
    assert r.content == d.content and r.headers["repr-digest"] == repr_digest(d.content)
    assert r.headers["etag"] == f'"{hashlib.sha256(d.content).hexdigest()}"'
    message = await d.wait(consumer_pid, "/completion")
    assert message["providerPid"] == provider_pid
    assert await d.state(provider_pid) == "COMPLETED"
    gets_nothing(await d.pull(start))
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_completed"]
    assert d.got(consumer_pid, "/start") == [start]  # nothing else was sent
    assert d.got(consumer_pid, "/termination") == d.got(consumer_pid, "/suspension") == []


async def test_TP_01_03_started_suspended_then_terminated_by_the_provider(market: Any, consumer: Consumer,
                                                                         market_regulator: Any) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    await regulator_action(market.client, market_regulator, "freeze_asset", d.asset["id"])
    suspension = await d.wait(consumer_pid, "/suspension")
    assert suspension["code"] == "no-access" and suspension["reason"]
    assert await d.state(provider_pid) == "SUSPENDED"
    gets_nothing(await d.pull(start))
    await regulator_action(market.client, market_regulator, "revoke_registration", d.asset["id"])
    termination = await d.wait(consumer_pid, "/termination")
    assert termination["code"] == "no-access"
    assert await d.state(provider_pid) == "TERMINATED"
    gets_nothing(await d.pull(start))
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_suspended",
                         "dsp.transfer_terminated"]


async def test_TP_01_04_started_suspended_started_then_completed_by_the_provider(market: Any, consumer: Consumer,
                                                                                market_regulator: Any) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, first = await d.started()
    await regulator_action(market.client, market_regulator, "freeze_asset", d.asset["id"])
    await d.wait(consumer_pid, "/suspension")
    assert await d.state(provider_pid) == "SUSPENDED"
    await regulator_action(market.client, market_regulator, "unfreeze_asset", d.asset["id"])
    again = await d.wait(consumer_pid, "/start", 2)
    assert await d.state(provider_pid) == "STARTED"
    assert address(again)[1] != address(first)[1]  # a new token; the old one is over
    gets_nothing(await d.pull(first))
    r = await d.pull(again)
    assert r.status_code == 200 and r.content == d.content
    await d.wait(consumer_pid, "/completion")
    assert await d.state(provider_pid) == "COMPLETED"
    gets_nothing(await d.pull(again))
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_suspended",
                         "dsp.transfer_started", "dsp.transfer_completed"]


async def test_TP_01_05_requested_then_terminated_by_the_provider(market: Any, consumer: Consumer,
                                                                  market_regulator: Any) -> None:
    d = await deal(market, consumer)
    await regulator_action(market.client, market_regulator, "freeze_asset", d.asset["id"])
    provider_pid, consumer_pid = await d.requested()  # answered REQUESTED, then ended: frozen now
    termination = await d.wait(consumer_pid, "/termination")
    assert termination["providerPid"] == provider_pid and termination["code"] == "no-access"
    assert await d.state(provider_pid) == "TERMINATED"
    assert d.got(consumer_pid, "/start") == []
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_terminated"]


# -- TP_02: transfer request, consumer scenarios ----------------------------------------


async def test_TP_02_01_started_then_terminated_by_the_consumer(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    r = await d.terminate(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    assert await d.state(provider_pid) == "TERMINATED"
    gets_nothing(await d.pull(start))
    assert d.got(consumer_pid, "/termination") == []  # the consumer is not told what it said
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_terminated"]


async def test_TP_02_02_started_then_completed_by_the_consumer(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    r = await d.complete(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    assert await d.state(provider_pid) == "COMPLETED"
    gets_nothing(await d.pull(start))
    assert d.got(consumer_pid, "/completion") == []
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_completed"]


async def test_TP_02_03_started_suspended_then_terminated_by_the_consumer(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    assert (await d.suspend(provider_pid, consumer_pid)).status_code == 200
    assert await d.state(provider_pid) == "SUSPENDED"
    gets_nothing(await d.pull(start))
    assert (await d.terminate(provider_pid, consumer_pid)).status_code == 200
    assert await d.state(provider_pid) == "TERMINATED"
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_suspended",
                         "dsp.transfer_terminated"]


async def test_TP_02_04_started_suspended_started_then_completed_by_the_consumer(market: Any,
                                                                                 consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, first = await d.started()
    assert (await d.suspend(provider_pid, consumer_pid)).status_code == 200
    assert await d.state(provider_pid) == "SUSPENDED"
    r = await d.resume(provider_pid, consumer_pid)
    assert r.status_code == 200, r.text
    assert await d.state(provider_pid) == "STARTED"
    again = await d.wait(consumer_pid, "/start", 2)  # the new token to pull with
    assert address(again)[1] != address(first)[1]
    gets_nothing(await d.pull(first))
    r = await d.pull(again, "bytes=100-199")
    assert r.status_code == 206 and r.content == d.content[100:200]
    assert (await d.complete(provider_pid, consumer_pid)).status_code == 200
    assert await d.state(provider_pid) == "COMPLETED"
    gets_nothing(await d.pull(again))
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_suspended",
                         "dsp.transfer_started", "dsp.transfer_completed"]


async def test_TP_02_05_requested_then_terminated_by_the_consumer(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    running, running_consumer, start = await d.started()
    provider_pid, consumer_pid = await d.requested()  # waits behind the started one
    assert await d.state(provider_pid) == "REQUESTED"
    assert (await d.terminate(provider_pid, consumer_pid)).status_code == 200
    assert await d.state(provider_pid) == "TERMINATED"
    # The started one ending starts no terminated one.
    assert (await d.pull(start)).status_code == 200
    await d.wait(running_consumer, "/completion")
    assert await d.state(provider_pid) == "TERMINATED" and d.got(consumer_pid, "/start") == []


# -- TP_03: negative scenarios -----------------------------------------------------------


async def waiting(d: Deal) -> tuple[str, str]:
    """A transfer REQUESTED behind a started one of the same agreement."""
    await d.started()
    provider_pid, consumer_pid = await d.requested()
    assert await d.state(provider_pid) == "REQUESTED"
    return provider_pid, consumer_pid


async def test_TP_03_01_requested_then_completed_by_the_consumer_is_an_error(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid = await waiting(d)
    refused(await d.complete(provider_pid, consumer_pid), provider_pid, consumer_pid)
    assert await d.state(provider_pid) == "REQUESTED"


async def test_TP_03_02_requested_then_suspended_by_the_consumer_is_an_error(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid = await waiting(d)
    refused(await d.suspend(provider_pid, consumer_pid), provider_pid, consumer_pid)
    assert await d.state(provider_pid) == "REQUESTED"
    refused(await d.resume(provider_pid, consumer_pid), provider_pid, consumer_pid)  # nor started by it
    assert await d.state(provider_pid) == "REQUESTED"


async def test_TP_03_03_suspended_then_completed_by_the_consumer_is_an_error(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, _start = await d.started()
    assert (await d.suspend(provider_pid, consumer_pid)).status_code == 200
    refused(await d.complete(provider_pid, consumer_pid), provider_pid, consumer_pid)
    assert await d.state(provider_pid) == "SUSPENDED"


async def test_TP_03_04_terminated_then_started_by_the_consumer_is_an_error(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, _start = await d.started()
    assert (await d.terminate(provider_pid, consumer_pid)).status_code == 200
    refused(await d.resume(provider_pid, consumer_pid), provider_pid, consumer_pid)
    assert await d.state(provider_pid) == "TERMINATED"


async def test_TP_03_05_terminated_then_suspended_by_the_consumer_is_an_error(market: Any,
                                                                              consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, _start = await d.started()
    assert (await d.terminate(provider_pid, consumer_pid)).status_code == 200
    refused(await d.suspend(provider_pid, consumer_pid), provider_pid, consumer_pid)
    assert await d.state(provider_pid) == "TERMINATED"


async def test_TP_03_06_terminated_then_completed_by_the_consumer_is_an_error(market: Any,
                                                                              consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, _start = await d.started()
    assert (await d.terminate(provider_pid, consumer_pid)).status_code == 200
    refused(await d.complete(provider_pid, consumer_pid), provider_pid, consumer_pid)
    assert await d.state(provider_pid) == "TERMINATED"
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started", "dsp.transfer_terminated"]


# -- the data ------------------------------------------------------------------------------


async def test_pulled_bytes_are_the_content_and_every_chunk_proves(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    _provider_pid, consumer_pid, start = await d.started()
    head = await d.pull(start, method="HEAD")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(SIZE)
    # Ranges: exactly those bytes, the whole revision's digest, and no completion.
    for spec, first, last in [("bytes=0-99", 0, 99), ("bytes=65530-65545", 65530, 65545),
                              ("bytes=-100", SIZE - 100, SIZE - 1)]:
        r = await d.pull(start, spec)
        assert r.status_code == 206, r.text
        assert r.content == d.content[first:last + 1]
        assert r.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
        assert r.headers["repr-digest"] == repr_digest(d.content)
    assert (await d.pull(start, f"bytes={SIZE}-")).status_code == 416
    assert d.got(consumer_pid, "/completion") == []
    r = await d.pull(start)
    assert r.status_code == 200 and r.content == d.content
    # Chunk by chunk against the registration certificate's Merkle root.
    cert = await market.client.get(f"/v1/assets/{d.asset['id']}/certificate")
    commitment = cert.json()["document"]["commitment"]
    root = bytes.fromhex(commitment["merkle_root"])
    n = -(-SIZE // CHUNK)
    for i in range(n):
        p = await market.client.get(f"/v1/orders/{d.order_id}/content/proof", params={"chunk": i}, headers=d.auth)
        assert p.status_code == 200, p.text
        hashes = [base64.b64decode(h) for h in p.json()["hashes"]]
        merkle.verify_inclusion(i, n, merkle.leaf_hash(r.content[i * CHUNK:(i + 1) * CHUNK]), hashes, root)
    # Each pull has its delivery receipt, as a download of the order's own.
    deliveries = await market.client.get(f"/v1/orders/{d.order_id}/deliveries", headers=d.auth)
    assert deliveries.status_code == 200, deliveries.text
    await d.wait(consumer_pid, "/completion")


async def test_no_token_another_token_or_another_transfer_gets_nothing(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, _consumer_pid, start = await d.started()
    other = await deal(market, consumer)
    _, _, other_start = await other.started()
    path = f"{BASE}/transfers/{provider_pid}/data"
    gets_nothing(await market.client.get(path))
    gets_nothing(await market.client.get(path, headers={"Authorization": "Bearer nonsense"}))
    gets_nothing(await market.client.get(path, headers=d.auth))  # the buyer's own API token is not the transfer's
    gets_nothing(await market.client.get(path, headers={"Authorization": f"Bearer {address(other_start)[1]}"}))
    gets_nothing(await market.client.get(f"{BASE}/transfers/dtp_unknown/data",
                                         headers={"Authorization": f"Bearer {address(start)[1]}"}))


async def test_a_download_under_way_stops_when_its_transfer_is_suspended(market: Any, consumer: Consumer) -> None:
    """The transfer's state is read again with the order's access while the body streams
    (here before every piece): the consumer's suspension stops its download, the part sent
    is recorded, and no completion follows; started again, the old token still gets nothing."""
    from market.dsp import data

    d = await deal(market, consumer, size=3 * CHUNK)
    provider_pid, consumer_pid, start = await d.started()
    services, portal = market.client.app.state.services, market.client.blocking_portal

    async def opened() -> Any:
        async with services.sessionmaker() as s:
            sending = await data.open_pull(s, services, provider_pid, address(start)[1], None, None,
                                           "http://testserver.local")
        sending.recheck_seconds = 0
        return sending

    sending = portal.call(opened)

    assert portal.call(take_piece, sending) == d.content[:CHUNK]
    assert (await d.suspend(provider_pid, consumer_pid)).status_code == 200
    assert portal.call(take_piece, sending) is None
    assert sending.stopped == f"access ended: transfer {provider_pid} is SUSPENDED"
    document = portal.call(sending.finish)
    assert document is not None and document["bytes"] == CHUNK and document["range"] == [0, CHUNK - 1]
    assert (await d.resume(provider_pid, consumer_pid)).status_code == 200
    await d.wait_state(provider_pid, "STARTED")
    gets_nothing(await d.pull(start))  # the token of the first start ended with the suspension
    assert d.got(consumer_pid, "/completion") == []


async def test_a_waiting_transfer_starts_when_the_started_one_ends(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    first, first_consumer, start = await d.started()
    second, second_consumer = await d.requested()
    third, third_consumer = await d.requested()
    assert await d.state(second) == await d.state(third) == "REQUESTED"
    assert (await d.pull(start)).status_code == 200
    await d.wait(first_consumer, "/completion")
    second_start = await d.wait(second_consumer, "/start")
    assert await d.state(second) == "STARTED" and await d.state(third) == "REQUESTED"
    assert (await d.terminate(second, second_consumer)).status_code == 200
    gets_nothing(await d.pull(second_start))
    await d.wait(third_consumer, "/start")
    assert await d.state(third) == "STARTED" and await d.state(first) == "COMPLETED"


async def test_a_suspended_buyer_suspends_and_reinstatement_starts_again(market: Any, consumer: Consumer,
                                                                         market_regulator: Any) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    await regulator_action(market.client, market_regulator, "suspend_account", consumer.buyer.id)
    await d.wait(consumer_pid, "/suspension")
    gets_nothing(await d.pull(start))
    await regulator_action(market.client, market_regulator, "reinstate_account", consumer.buyer.id)
    again = await d.wait(consumer_pid, "/start", 2)
    assert await d.state(provider_pid) == "STARTED"
    assert (await d.pull(again, "bytes=0-0")).status_code == 206


async def test_a_frozen_listing_suspends_and_the_consumer_may_not_start_it(market: Any, consumer: Consumer,
                                                                           market_regulator: Any) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    await regulator_action(market.client, market_regulator, "freeze_listing", d.listing["id"])
    await d.wait(consumer_pid, "/suspension")
    refused(await d.resume(provider_pid, consumer_pid), provider_pid, consumer_pid)  # the provider suspended it
    gets_nothing(await d.pull(start))
    await regulator_action(market.client, market_regulator, "unfreeze_listing", d.listing["id"])
    await d.wait(consumer_pid, "/start", 2)
    assert await d.state(provider_pid) == "STARTED"


# -- requests --------------------------------------------------------------------------------


async def test_the_same_consumer_pid_is_the_same_transfer(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    consumer_pid, r = await d.request()
    assert r.status_code == 201, r.text
    _, again = await d.request(consumer_pid)
    assert again.status_code == 201 and again.json()["providerPid"] == r.json()["providerPid"]
    await d.wait(consumer_pid, "/start")
    assert len(d.got(consumer_pid, "/start")) == 1
    assert d.steps().count("dsp.transfer_requested") == 1
    # Sent twice at once, it is still one process.
    twice = f"urn:uuid:{secrets.token_hex(16)}"
    answers = await asyncio.gather(d.request(twice), d.request(twice))
    assert [a.status_code for _, a in answers] == [201, 201], [a.text for _, a in answers]
    assert len({a.json()["providerPid"] for _, a in answers}) == 1
    assert d.steps().count("dsp.transfer_requested") == 2


async def test_bad_requests_are_400_and_create_nothing(market: Any, consumer: Consumer, receiver: Any) -> None:
    d = await deal(market, consumer)
    for fields, code in [({"format": "HttpData-PUSH"}, "unsupported-format"),
                         ({"dataAddress": {"@type": "DataAddress", "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
                                           "endpoint": "https://consumer.example/in"}}, "push-not-supported"),
                         ({"agreementId": "urn:market:agreement:ord_nothing"}, "unknown-agreement"),
                         ({"agreementId": "not-an-agreement"}, "unknown-agreement"),
                         ({"consumerPid": ""}, "bad-message"), ({"@type": "ContractRequestMessage"}, "bad-message"),
                         ({"@context": ["https://example.org/other"]}, "bad-message"),
                         ({"@context": None}, "bad-message")]:
        consumer_pid = f"urn:uuid:{secrets.token_hex(8)}"
        _, r = await d.request(consumer_pid, **fields)
        body = refused(r)
        assert body["code"] == code, body
        if fields.get("consumerPid") != "":
            assert body["consumerPid"] == consumer_pid
    # A message on a process, without the protocol's context: refused, and the process stays as it was.
    provider_pid, consumer_pid, _start = await d.started()
    r = await d.c.client.post(f"{BASE}/transfers/{provider_pid}/suspension", headers=d.auth, json={
        "@type": "TransferSuspensionMessage", "providerPid": provider_pid, "consumerPid": consumer_pid})
    assert refused(r, provider_pid, consumer_pid)["code"] == "bad-message"
    assert await d.state(provider_pid) == "STARTED"
    # Another buyer's agreement is none of this one's.
    stranger = Consumer(market.client, await buyer(market.client, market.parties), receiver)
    other = Deal(market, stranger, d.content, d.asset, d.listing, {"@id": d.agreement_id})
    _, r = await other.request()
    assert refused(r)["code"] == "unknown-agreement"
    assert d.steps() == ["dsp.transfer_requested", "dsp.transfer_started"]  # the one started above, only


async def test_strangers_and_other_parties_get_404(market: Any, consumer: Consumer, receiver: Any) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, _start = await d.started()
    stranger = Consumer(market.client, await buyer(market.client, market.parties), receiver)
    for headers in ({}, {"Authorization": "Bearer nonsense"}, dict(stranger.buyer.auth)):
        refused(await market.client.get(f"{BASE}/transfers/{provider_pid}", headers=headers), provider_pid,
                status=404)
        body = {"@context": CONTEXT, "@type": "TransferTerminationMessage", "providerPid": provider_pid,
                "consumerPid": consumer_pid}
        refused(await market.client.post(f"{BASE}/transfers/{provider_pid}/termination", json=body,
                                         headers=headers), provider_pid, consumer_pid, status=404)
    refused(await market.client.get(f"{BASE}/transfers/dtp_nothing", headers=d.auth), "dtp_nothing", status=404)
    assert await d.state(provider_pid) == "STARTED"


async def test_a_sandbox_agreement_is_never_transferred(market: Any, consumer: Consumer) -> None:
    holder, table, _rows = await table_asset(market.client, market.parties, market.operator)
    listing = await publish(market.client, holder, table["asset_id"],
                            plans=[{"model": "free", "price": {"amount": 0, "currency": "CNY"}, "delivery": "sandbox"}])
    _pid, _cpid, agreement = await consumer.finalized(listing, "free")
    d = Deal(market, consumer, b"", {"id": table["asset_id"]}, listing, agreement)
    consumer_pid, r = await d.request()
    assert refused(r, consumer_pid=consumer_pid)["code"] == "wrong-delivery"
    assert d.steps() == []


async def test_the_order_expiring_terminates_its_transfers(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    provider_pid, consumer_pid, start = await d.started()
    waiting_pid, _waiting_consumer = await d.requested()
    services = market.client.app.state.services

    async def expire() -> list[dict[str, Any]]:
        async with services.sessionmaker() as s:
            order = await s.get_one(Order, d.order_id)
            assert order.expires_at is not None
            later = Ctx(caller=None, now=order.expires_at + timedelta(seconds=1), services=services)
            assert await settlement.expire_due(s, later) >= 1  # what the clock's round runs
            await s.commit()
        async with services.read_sessionmaker() as s:
            rows = (await s.execute(select(DspCallback).where(
                col(DspCallback.process_id) == provider_pid,
                col(DspCallback.message_type) == "TransferTerminationMessage"))).scalars().all()
            return [json.loads(r.payload) for r in rows]

    [owed] = market.client.blocking_portal.call(expire)  # owed at that time: sent when it comes
    assert valid(owed, "TransferTerminationMessage")["code"] == "no-access"
    assert owed["consumerPid"] == consumer_pid
    assert await d.state(provider_pid) == await d.state(waiting_pid) == "TERMINATED"
    gets_nothing(await d.pull(start))
    assert d.steps()[-2:] == ["dsp.transfer_terminated", "dsp.transfer_terminated"]


async def test_requests_at_once_start_one_transfer(market: Any, consumer: Consumer) -> None:
    d = await deal(market, consumer)
    answers = await asyncio.gather(*(d.request() for _ in range(3)))
    assert [r.status_code for _, r in answers] == [201] * 3, [r.text for _, r in answers]
    pids = [r.json()["providerPid"] for _, r in answers]

    async def one_started() -> bool:
        states = sorted([await d.state(pid) for pid in pids])
        return states == ["REQUESTED", "REQUESTED", "STARTED"]

    await eventually(one_started)
