"""A stub DSP consumer for the provider's tests, as the conformance kit drives it: it
sends the protocol's messages with a buyer's token and records the callbacks the
market posts to its ``callbackAddress``."""

import secrets
from dataclasses import dataclass
from typing import Any

from tests.dsp.schemas import validate
from tests.notifications.support import Receiver, eventually
from tests.regulator_acts import act

CONTEXT = ["https://w3id.org/dspace/2025/1/context.jsonld"]
BASE = "/dsp/2025-1"
ACTIONS = "/v1/oversight/actions"
# The protocol's schema of every message the market sends or answers with.
SCHEMAS = {
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": "negotiation/contract-negotiation-termination-message-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferError": "transfer/transfer-error-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
}


def valid(body: dict[str, Any]) -> dict[str, Any]:
    """``body``, checked against the protocol's schema of its ``@type``."""
    validate(body, SCHEMAS[body["@type"]])
    return body


def offer_id(listing: dict[str, Any], model: str) -> str:
    plan = next(p["id"] for p in listing["plans"] if p["model"] == model)
    return f"urn:market:offer:{listing['id']}:{plan}"


def dataset_id(listing: dict[str, Any]) -> str:
    return f"urn:market:listing:{listing['id']}"


@dataclass
class Consumer:
    """One consumer connector: a buyer's token, a callback server, and its processes."""

    client: Any
    buyer: Any
    receiver: Receiver

    @property
    def address(self) -> str:
        return self.receiver.url(f"/cb-{self.buyer.id}")

    def message(self, type_: str, **fields: Any) -> dict[str, Any]:
        return {"@context": CONTEXT, "@type": type_, **fields}

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return await self.client.post(f"{BASE}{path}", json=body, headers=self.buyer.auth if headers is None else headers)

    async def request(self, listing: dict[str, Any], model: str = "free", *, purpose: str | None = None,
                      consumer_pid: str | None = None, target: bool = True) -> tuple[str, Any]:
        """A first ContractRequestMessage; returns ``(consumerPid, response)``."""
        pid = consumer_pid or f"urn:uuid:{secrets.token_hex(16)}"
        offer: dict[str, Any] = {"@type": "Offer", "@id": offer_id(listing, model),
                                 "permission": [{"action": "use"}]}
        if target:
            offer["target"] = dataset_id(listing)
        if purpose:
            offer["permission"] = [{"action": "use", "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": f"urn:market:purpose:{purpose}"}]}]
        body = self.message("ContractRequestMessage", consumerPid=pid, offer=offer, callbackAddress=self.address)
        return pid, await self.post("/negotiations/request", body)

    async def state(self, provider_pid: str) -> str:
        r = await self.client.get(f"{BASE}/negotiations/{provider_pid}", headers=self.buyer.auth)
        assert r.status_code == 200, r.text
        return str(valid(r.json())["state"])

    async def wait_state(self, provider_pid: str, state: str, seconds: float = 15.0) -> None:
        async def reached() -> bool:
            return await self.state(provider_pid) == state

        await eventually(reached, seconds)

    def got(self, consumer_pid: str, tail: str) -> list[dict[str, Any]]:
        return [r.json for r in self.receiver.at(f"/cb-{self.buyer.id}/negotiations/{consumer_pid}{tail}")]

    async def wait_message(self, consumer_pid: str, tail: str, count: int = 1, seconds: float = 15.0) -> dict[str, Any]:
        """The ``count``-th message posted to ``/negotiations/<consumerPid><tail>``."""
        async def arrived() -> Any:
            found = self.got(consumer_pid, tail)
            return valid(found[count - 1]) if len(found) >= count else None

        return await eventually(arrived, seconds)  # type: ignore[no-any-return]

    async def send(self, provider_pid: str, consumer_pid: str, tail: str, type_: str, **fields: Any) -> Any:
        body = self.message(type_, providerPid=provider_pid, consumerPid=consumer_pid, **fields)
        return await self.post(f"/negotiations/{provider_pid}{tail}", body)

    async def verify(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/agreement/verification",
                               "ContractAgreementVerificationMessage")

    async def accept(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/events", "ContractNegotiationEventMessage",
                               eventType="ACCEPTED")

    async def terminate(self, provider_pid: str, consumer_pid: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/termination", "ContractNegotiationTerminationMessage",
                               code="consumer-changed-its-mind", reason=["no longer needed"])

    async def counter(self, provider_pid: str, consumer_pid: str, listing: dict[str, Any], model: str) -> Any:
        return await self.send(provider_pid, consumer_pid, "/request", "ContractRequestMessage",
                               offer={"@type": "Offer", "@id": offer_id(listing, model),
                                      "target": dataset_id(listing), "permission": [{"action": "use"}]},
                               callbackAddress=self.address)

    async def finalized(self, listing: dict[str, Any], model: str = "free") -> tuple[str, str, dict[str, Any]]:
        """A negotiation through to FINALIZED on a free plan: ``(providerPid, consumerPid, agreement)``."""
        consumer_pid, r = await self.request(listing, model)
        assert r.status_code == 201, r.text
        provider_pid = r.json()["providerPid"]
        agreement = (await self.wait_message(consumer_pid, "/agreement"))["agreement"]
        r = await self.verify(provider_pid, consumer_pid)
        assert r.status_code == 200, r.text
        await self.wait_message(consumer_pid, "/events")
        await self.wait_state(provider_pid, "FINALIZED")
        return provider_pid, consumer_pid, agreement


async def regulator_action(client: Any, regulator: Any, action: str, target: str) -> None:
    """A regulator's signed action (freeze_asset, unfreeze_asset, freeze_listing, suspend_account ...)."""
    r = await act(client, regulator, "action", ACTIONS,
                  {"action": action, "target": target, "reason": "complaint under review"})
    assert r.status_code in (200, 201), r.text


__all__ = ["BASE", "CONTEXT", "SCHEMAS", "Consumer", "valid", "dataset_id", "offer_id", "regulator_action"]
