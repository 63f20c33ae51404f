"""The protocol's version metadata and its catalog (docs/dsp.md "Catalog").

- ``GET /.well-known/dspace-version`` (no token): the versions served.
- ``POST /dsp/2025-1/catalog/request``: a ``CatalogRequestMessage``; the answer is a page
  of the ``Catalog`` (``?limit``, 1..500, 50 by default; the next page's URL in ``Link:
  <…>; rel="next"``, asked with the same message). Its optional ``filter`` holds objects
  of ``q``, ``category``, ``purpose`` (a code or a purpose IRI) and ``delivery``, as the
  search of ``GET /v1/listings`` takes them; several objects must all match.
- ``GET /dsp/2025-1/catalog/datasets/{id}``: one ``Dataset`` (``404`` for one the consumer
  may not order).

Every answer but the metadata needs a verified buyer's token (else ``404``); errors are
``CatalogError`` bodies (``application/json``). Read-only: the read sessions.
"""

import json
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post

from market.core.errors import DomainError
from market.core.pagination import DEFAULT_LIMIT
from market.core.services import Services
from market.dsp import catalog, odrl
from market.dsp.protocol import BASE, CONTEXT, DspError, consumer, market_participant, ok, parse_dataset_id
from market.listings import read
from market.listings.schemas import ListingRead
from market.listings.search import SearchParams
from market.web.links import public_base

CATALOG_ERROR = "CatalogError"
MAX_LIMIT = 500
FILTER_KEYS = frozenset({"q", "category", "purpose", "delivery"})


def _bad(reason: str, code: str = "bad-request") -> DspError:
    return DspError(400, code, reason, error_type=CATALOG_ERROR)


async def _message(request: Request[Any, Any, Any], message_type: str) -> dict[str, Any]:
    """The body as the protocol's message ``message_type``, or 400."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise _bad("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("the body is not a JSON object")
    context = body.get("@context")
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context) or CONTEXT[0] not in context:
        raise _bad(f"@context must be an array of strings naming {CONTEXT[0]}")
    if body.get("@type") != message_type:
        raise _bad(f"@type must be {message_type}")
    return body


def _limit(request: Request[Any, Any, Any]) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad(f"limit must be a whole number from 1 to {MAX_LIMIT}", "bad-limit")
    return int(raw)


def _filters(message: dict[str, Any]) -> dict[str, str]:
    """The ``filter`` of a catalog request as search parameters (400 for one not understood)."""
    given = message.get("filter", [])
    if not isinstance(given, list):
        raise _bad("filter must be an array")
    found: dict[str, str] = {}
    for item in given:
        if not isinstance(item, dict) or not item or not set(item) <= FILTER_KEYS:
            raise _bad(f"a filter is an object of {', '.join(sorted(FILTER_KEYS))}", "bad-filter")
        for key, value in item.items():
            if key == "purpose":
                value = odrl.parse_purpose_iri(value) or value
            if not isinstance(value, str) or not value or (key in found and found[key] != value):
                raise _bad(f"filter {key} must be one non-empty string", "bad-filter")
            found[key] = value
    return found


def _present(root: str, consumer_id: str, listings: list[ListingRead], *,
             standalone: bool = False) -> list[dict[str, Any]]:
    found = []
    for listing in listings:
        plans = catalog.offerable_plans(listing, consumer_id)
        if plans:
            found.append(catalog.dataset(root, listing, plans, standalone=standalone))
    return found


@get("/.well-known/dspace-version", media_type="application/json", include_in_schema=False, sync_to_thread=False)
def dspace_version() -> Response[Any]:
    """The protocol versions this market serves (no token needed)."""
    return ok(catalog.version_metadata())


@post(f"{BASE}/catalog/request", media_type="application/json", include_in_schema=False)
async def catalog_request(request: Request[Any, Any, Any], services: Services) -> Response[Any]:
    """A page of the catalog the calling consumer may order from."""
    try:
        caller = await consumer(request, CATALOG_ERROR)
        message = await _message(request, "CatalogRequestMessage")
        limit, cursor = _limit(request), request.query_params.get("cursor")
        wanted = _filters(message)
        params = SearchParams(sort="newest", limit=limit, cursor=cursor, q=wanted.get("q"),
                              category=wanted.get("category"), purpose=wanted.get("purpose"),
                              delivery=wanted.get("delivery"))
        async with services.read_sessionmaker() as db:
            page = await read.find(db, caller, params)
    except DspError as exc:
        return exc.response()
    except DomainError as exc:  # a bad cursor or filter value, as the search says it
        return _bad(exc.detail, exc.kind).response()
    root = public_base(request)
    body = catalog.catalog(root, market_participant(services.settings), services.settings.name,
                           _present(root, caller.id, page.items))
    headers = None
    if page.next_cursor is not None:
        query = urlencode({"limit": limit, "cursor": page.next_cursor})
        headers = {"Link": f'<{catalog.endpoint(root)}/catalog/request?{query}>; rel="next"'}
    return ok(body, headers=headers)


@get(f"{BASE}/catalog/datasets/{{dataset:str}}", media_type="application/json", include_in_schema=False)
async def catalog_dataset(request: Request[Any, Any, Any], services: Services, dataset: str) -> Response[Any]:
    """One dataset of the catalog, by its ``@id``."""
    try:
        caller = await consumer(request, CATALOG_ERROR)
        listing_id = parse_dataset_id(dataset)
        listings = []
        if listing_id is not None:
            async with services.read_sessionmaker() as db:
                listings = await read.read_many(db, [listing_id], caller)
        found = _present(public_base(request), caller.id, listings, standalone=True)
        if not found:
            raise DspError(404, "not-found", f"no dataset {dataset} in this catalog", error_type=CATALOG_ERROR)
    except DspError as exc:
        return exc.response()
    return ok(found[0])


CATALOG_ROUTES = [dspace_version, catalog_request, catalog_dataset]

__all__ = ["CATALOG_ROUTES", "catalog_dataset", "catalog_request", "dspace_version"]
