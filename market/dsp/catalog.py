"""The listings as the Dataspace Protocol's catalog (docs/dsp.md "Catalog").

- A ``Dataset`` per listing the consumer may order, ``@id`` ``urn:market:listing:<lst_id>``.
- An ``Offer`` per plan the consumer may order (public plans, and private ones that name
  it), ``@id`` ``urn:market:offer:<lst_id>:<pln_id>``, its ODRL rules the licence
  (``market.dsp.odrl``), never a ``target``. Besides the rules an offer states the plan's
  price (schema.org ``price`` and ``priceCurrency``) and the market's own terms under
  ``urn:market:term:`` (``model``, ``delivery``, ``periodDays``): the schemas allow
  properties of one's own, and absolute IRIs keep them through JSON-LD expansion.
- One ``Distribution`` per dataset: ``HttpData-PULL`` from the market's ``DataService``.
  Plans that deliver in the sandbox or by api are offered too (their ``delivery`` says
  so): the agreement is made here, but the protocol's transfer is refused for them; the
  data is used through the market's own routes.
"""

from typing import Any

from market.core import money
from market.dsp import odrl
from market.dsp.protocol import BASE, CONTEXT, HTTP_PULL, dataset_id, offer_id
from market.listings.schemas import ListingRead, PlanRead

SCHEMA_ORG = "http://schema.org/"
TERM = "urn:market:term:"


def endpoint(root: str) -> str:
    """The protocol's endpoint: ``<root>/dsp/2025-1``."""
    return root.rstrip("/") + BASE


def data_service(root: str) -> dict[str, Any]:
    """The market's one ``DataService``, identified by its endpoint."""
    url = endpoint(root)
    return {"@id": url, "@type": "DataService", "endpointURL": url}


def version_metadata() -> dict[str, Any]:
    """``GET /.well-known/dspace-version``."""
    return {"protocolVersions": [{"version": "2025-1", "path": BASE, "binding": "HTTPS"}]}


def offerable_plans(listing: ListingRead, consumer: str) -> list[PlanRead]:
    """The plans account ``consumer`` may order: public ones and private ones naming it
    (its own listing's plans are nobody's to order by it: self-dealing)."""
    if listing.provider == consumer or not listing.orderable:
        return []
    return [p for p in listing.plans if p.private_to is None or consumer in p.private_to]


def offer(listing: ListingRead, plan: PlanRead) -> dict[str, Any]:
    """A plan as an ``Offer`` of the catalog: no ``target`` (the dataset is its target)."""
    found: dict[str, Any] = {"@id": offer_id(listing.id, plan.id), "@type": "Offer",
                             **odrl.rules(listing.licence.model_dump(), list(listing.licence.purposes))}
    found.update(plan_terms(plan))
    return found


def plan_terms(plan: PlanRead) -> dict[str, Any]:
    """What a plan adds to its offer besides the rules: price, model, delivery, period."""
    terms: dict[str, Any] = {
        SCHEMA_ORG + "price": money.decimal(plan.price.amount, plan.price.currency),
        SCHEMA_ORG + "priceCurrency": plan.price.currency,
        TERM + "model": plan.model,
        TERM + "delivery": plan.delivery or "download",
    }
    if plan.period_days is not None:
        terms[TERM + "periodDays"] = plan.period_days
    return terms


def dataset(root: str, listing: ListingRead, plans: list[PlanRead], *, standalone: bool) -> dict[str, Any]:
    """A listing as a ``Dataset`` with ``plans`` as its offers. ``standalone``: the answer
    to a dataset request (``@context``, the service inline); in a catalog the
    distribution names the catalog's service by its ``@id``."""
    service = data_service(root)
    found: dict[str, Any] = {"@context": CONTEXT} if standalone else {}
    found.update({
        "@id": dataset_id(listing.id),
        "@type": "Dataset",
        "dct:title": listing.title,
        "dct:description": listing.description or listing.summary or listing.title,
        "hasPolicy": [offer(listing, plan) for plan in plans],
        "distribution": [{"@type": "Distribution", "format": HTTP_PULL,
                          "accessService": service if standalone else service["@id"]}],
    })
    if listing.registration_number:
        found["dct:identifier"] = listing.registration_number
    return found


def catalog(root: str, participant: str, title: str, datasets: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``Catalog``: ``@id`` and ``participantId`` the market's participant id, its
    service, and ``dataset`` (left out when empty: the schema wants at least one)."""
    found: dict[str, Any] = {"@context": CONTEXT, "@id": participant, "@type": "Catalog",
                             "participantId": participant, "dct:title": title,
                             "service": [data_service(root)]}
    if datasets:
        found["dataset"] = datasets
    return found


__all__ = ["catalog", "data_service", "dataset", "endpoint", "offer", "offerable_plans", "plan_terms",
           "version_metadata"]
