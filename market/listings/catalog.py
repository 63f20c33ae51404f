"""The public listings as a DCAT-AP catalog (docs/API.md ``GET /v1/catalog``), in JSON-LD with
its ``@context`` inline, so a harvester (CKAN's dcat extension, an EDC catalog crawler)
reads it without fetching anything else.

One ``dcat:Dataset`` per listed listing, identified by its registration number
(``dct:identifier``); one ``dcat:Distribution`` per public plan (its ``dct:description``
says how it delivers: download, sandbox or api), with its price as a ``schema:Offer`` (DCAT has no price property; schema.org's is what harvesters map).
The licence terms are a ``dct:LicenseDocument`` whose description states them, and
each purpose is also given as an ``odrl:permission`` action for machines. Pages follow
Hydra (``hydra:next``), newest first, like ``GET /v1/listings?sort=newest``.
"""

from typing import Any

from market.core import money
from market.listings.schemas import ListingRead

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "schema": "http://schema.org/",
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "hydra": "http://www.w3.org/ns/hydra/core#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dct:issued": {"@type": "xsd:dateTime"},
    "dct:modified": {"@type": "xsd:dateTime"},
    "schema:price": {"@type": "xsd:decimal"},
    "dcat:keyword": {"@container": "@set"},
}

def decimal_price(amount: int, currency: str) -> str:
    """Minor units as the exact decimal a catalog shows: 880000 CNY → ``"8800.00"``
    (``market.core.money.decimal``, the market's one formatter)."""
    return money.decimal(amount, currency)


def _licence(base: str, listing: ListingRead) -> dict[str, Any]:
    lic = listing.licence
    words = (f"purposes: {', '.join(lic.purposes)}; term: {lic.term_days} days; "
             f"redistribution: {'allowed' if lic.redistribution else 'not allowed'}; territory: {lic.territory}")
    return {
        "@id": f"{base}/v1/listings/{listing.id}#licence-v{listing.terms_version}",
        "@type": "dct:LicenseDocument",
        "dct:description": words,
        "odrl:permission": [{"odrl:action": {"@id": f"{base}/v1/catalog#purpose-{p}"}} for p in lic.purposes],
    }


def dataset(base: str, listing: ListingRead) -> dict[str, Any]:
    page = f"{base}/v1/listings/{listing.id}"
    licence = _licence(base, listing)
    return {
        "@id": page,
        "@type": "dcat:Dataset",
        "dct:identifier": listing.registration_number,
        "dct:title": listing.title,
        "dct:description": listing.description or listing.summary or listing.title,
        "dcat:keyword": listing.tags,
        "dcat:theme": {"@id": f"{base}/v1/catalog#theme-{listing.category}", "@type": "skos:Concept",
                       "skos:prefLabel": listing.category},
        "dct:publisher": {"@id": f"{base}/v1/accounts/{listing.provider}", "@type": "foaf:Agent",
                          "foaf:name": listing.provider_name},
        "dct:issued": listing.created_at.isoformat().replace("+00:00", "Z"),
        "dct:modified": listing.updated_at.isoformat().replace("+00:00", "Z"),
        "dcat:landingPage": {"@id": page},
        "dct:license": {"@id": licence["@id"]},
        "dcat:distribution": [{
            "@id": f"{page}#{plan.id}",
            "@type": "dcat:Distribution",
            "dct:title": plan.model if plan.period_days is None else f"{plan.model} ({plan.period_days} days)",
            "dct:description": DELIVERY_TEXT[plan.delivery or "download"],
            "dcat:accessURL": {"@id": page},
            "dct:license": licence,
            "schema:offers": {"@type": "schema:Offer", "schema:price": decimal_price(plan.price.amount,
                                                                                      plan.price.currency),
                              "schema:priceCurrency": plan.price.currency},
        } for plan in listing.plans],
    }


DELIVERY_TEXT = {
    "download": "download: the content itself, under the licence (GET /v1/orders/{id}/content)",
    "sandbox": "sandbox: aggregate queries run inside the market; no row is handed over "
               "(POST /v1/orders/{id}/queries)",
    "api": "api: records looked up by key, metered per 1,000 records within a quota per period "
           "(GET /v1/orders/{id}/records)",
}


def catalog(base: str, title: str, listings: list[ListingRead], next_url: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": f"{base}/v1/catalog",
        "@type": "dcat:Catalog",
        "dct:title": title,
        "dct:description": "Registered data products listed on the exchange (数据要素市场挂牌目录).",
        "dct:publisher": {"@id": f"{base}/", "@type": "foaf:Agent", "foaf:name": title},
        "foaf:homepage": {"@id": f"{base}/"},
        "dcat:dataset": [dataset(base, x) for x in listings],
    }
    if next_url is not None:
        document["hydra:view"] = {"@id": f"{base}/v1/catalog", "@type": "hydra:PartialCollectionView",
                                  "hydra:next": {"@id": next_url}}
    return document
