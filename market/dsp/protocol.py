"""What every route of the protocol shares: its ``@context``, the participants' ids, the
consumer's authentication and the protocol's own error bodies (never problem+json).

docs/API.md "Dataspace Protocol": a missing or bad token, an unknown process or another
party's process is ``404``; an invalid transition, an unknown offer or dataset, a
``target`` that does not match is ``400``.
"""

import re
from typing import Any

from litestar import Request, Response

from market.accounts.schemas import AccountStatus, Role
from market.core.config import Settings
from market.core.errors import DomainError, InvalidTransition, NotFound
from market.web.auth import Caller, authenticate

VERSION = "2025-1"
BASE = f"/dsp/{VERSION}"
CONTEXT = ["https://w3id.org/dspace/2025/1/context.jsonld"]
HTTP_PULL = "HttpData-PULL"
ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"


def participant(account_id: str) -> str:
    """A consumer's participant id: the buyer account's."""
    return f"urn:market:account:{account_id}"


def market_participant(settings: Settings) -> str:
    """``MARKET_DSP_PARTICIPANT_ID``, or ``urn:market:<slug of MARKET_NAME>``: the assigner of every agreement."""
    if settings.dsp_participant_id:
        return settings.dsp_participant_id
    slug = re.sub(r"[^a-z0-9]+", "-", settings.name.lower()).strip("-") or "market"
    return f"urn:market:{slug}"


def dataset_id(listing_id: str) -> str:
    return f"urn:market:listing:{listing_id}"


def offer_id(listing_id: str, plan_id: str) -> str:
    return f"urn:market:offer:{listing_id}:{plan_id}"


def agreement_id(order_id: str) -> str:
    return f"urn:market:agreement:{order_id}"


def parse_offer_id(value: str) -> tuple[str, str] | None:
    """``(listing_id, plan_id)`` of an offer's ``@id``, or None."""
    parts = value.split(":")
    if len(parts) != 5 or parts[:3] != ["urn", "market", "offer"] or not parts[3] or not parts[4]:
        return None
    return parts[3], parts[4]


def parse_dataset_id(value: str) -> str | None:
    prefix = "urn:market:listing:"
    return value[len(prefix):] or None if value.startswith(prefix) else None


def parse_agreement_id(value: str) -> str | None:
    prefix = "urn:market:agreement:"
    return value[len(prefix):] or None if value.startswith(prefix) else None


class DspError(Exception):
    """A protocol error: ``status`` and the body of ``error_type`` (CatalogError,
    ContractNegotiationError, TransferError) with the pids it has."""

    def __init__(self, status: int, code: str, reason: str, *, error_type: str = "ContractNegotiationError",
                 provider_pid: str | None = None, consumer_pid: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.error_type = status, code, reason, error_type
        self.provider_pid, self.consumer_pid = provider_pid, consumer_pid

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"@context": CONTEXT, "@type": self.error_type}
        if self.error_type != "CatalogError":  # the process errors always name both pids ("" when unknown)
            body["providerPid"] = self.provider_pid or ""
            body["consumerPid"] = self.consumer_pid or ""
        body["code"] = self.code
        body["reason"] = [self.reason]
        return body

    def response(self) -> Response[Any]:
        return Response(self.body(), status_code=self.status, media_type="application/json")


def envelope(message: Any, type_: str, error_type: str, pids: tuple[str | None, str | None] = (None, None)
             ) -> dict[str, Any]:
    """A consumer's message, checked as far as every message of the protocol goes: a JSON
    object of ``type_`` in the protocol's context, with a consumerPid. Otherwise ``400``
    ``bad-message``, an ``error_type`` naming ``pids`` (provider's, consumer's)."""
    def bad(reason: str) -> DspError:
        return DspError(400, "bad-message", reason, error_type=error_type, provider_pid=pids[0],
                        consumer_pid=pids[1])

    if not isinstance(message, dict):
        raise bad("the body is not a JSON object")
    context = message.get("@context")
    if not isinstance(context, list) or CONTEXT[0] not in context:
        raise bad(f"@context must be an array holding {CONTEXT[0]}")
    if message.get("@type") != type_:
        raise bad(f"expected a {type_}, got {message.get('@type')!r}")
    if not isinstance(message.get("consumerPid"), str) or not message["consumerPid"].strip():
        raise bad("consumerPid is missing")
    return message


def from_domain(exc: DomainError, error_type: str, provider_pid: str | None = None,
                consumer_pid: str | None = None) -> DspError:
    """A domain refusal as the protocol says it: not found stays 404, anything else the
    consumer asked for that cannot be done (a transition, a gate) is 400."""
    status = 404 if isinstance(exc, NotFound) else 400
    code = "invalid-transition" if isinstance(exc, InvalidTransition) else exc.kind
    return DspError(status, code, exc.detail, error_type=error_type, provider_pid=provider_pid,
                    consumer_pid=consumer_pid)


async def consumer(request: Request[Any, Any, Any], error_type: str) -> Caller:
    """The calling connector: a verified buyer's bearer token, or 404 (the protocol tells a
    stranger nothing, not even that the route needs a token)."""
    try:
        caller = await authenticate(request)
    except DomainError:
        caller = None
    if caller is None or not caller.has(Role.buyer) or caller.account.status != AccountStatus.verified:
        raise DspError(404, "not-found", "no such process for this participant", error_type=error_type)
    return caller


def ok(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(body, status_code=status, media_type="application/json", headers=headers)
