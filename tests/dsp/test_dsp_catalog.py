"""The Dataspace Protocol's version metadata and catalog (docs/dsp.md).

The first four tests are the mandatory scenarios of the protocol's compatibility kit
(eclipse-dataspacetck/dsp-tck: dsp-metadata ``Metadata01Test``, dsp-catalog
``Catalog01Test``) with the kit's assertions, named by their ids; the others hold the
market's own mapping: every answer valid under the protocol's schemas, the licence in
ODRL, who sees which offers, paging and the refusals."""

import json
from typing import Any

from market.dsp import odrl
from market.dsp.protocol import market_participant
from tests.conftest import Parties, Party
from tests.dsp.schemas import validate
from tests.listings.support import LICENCE, listed, publish, word
from tests.registry_support import Signer, add_key, provider
from tests.regulator_acts import act
from tests.trading.support import buyer
from tests.usage.support import METERED, SANDBOX, table_asset

CONTEXT = "https://w3id.org/dspace/2025/1/context.jsonld"
BASE = "/dsp/2025-1"


def catalog_request(**extra: Any) -> dict[str, Any]:
    """The kit's ``CatalogRequestMessage`` (it sends an ``@id`` of its own too)."""
    return {"@context": [CONTEXT], "@id": "urn:uuid:5b7f0f64-0e5f-4a1c-9a56-9c2f8a0d9f11",
            "@type": "CatalogRequestMessage", **extra}


async def ask_catalog(client: Any, who: Party | Signer, tag: str | None = None, url: str = f"{BASE}/catalog/request",
                      **extra: Any) -> Any:
    body = catalog_request(**({"filter": [{"q": tag}]} if tag else {}), **extra)
    return await client.post(url, json=body, headers=who.auth)


async def catalog_of(client: Any, who: Party | Signer, tag: str) -> dict[str, Any]:
    r = await ask_catalog(client, who, tag)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    validate(r.json(), "catalog/catalog-schema.json")
    return r.json()  # type: ignore[no-any-return]


def dataset_ids(catalog: dict[str, Any]) -> list[str]:
    return [d["@id"] for d in catalog.get("dataset", [])]


def catalog_error(r: Any, status: int) -> dict[str, Any]:
    """A ``CatalogError`` body of ``status``: application/json, never problem+json."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body = r.json()
    validate(body, "catalog/catalog-error-schema.json")
    assert body["@type"] == "CatalogError" and body["@context"] == [CONTEXT]
    return body  # type: ignore[no-any-return]


async def a_listing(client: Any, parties: Parties, operator: Party, tag: str, **changes: Any) -> dict[str, Any]:
    holder = await provider(client, parties)
    return await listed(client, holder, operator, tags=[tag], **changes)


# -- the kit's mandatory scenarios --------------------------------------------------------

async def test_MET_01_01_version_metadata(client) -> None:
    r = await client.get("/.well-known/dspace-version")  # no token
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    metadata = r.json()
    validate(metadata, "common/protocol-version-schema.json")
    versions = metadata["protocolVersions"]
    assert versions is not None
    assert any(v.get("version") == "2025-1" and v.get("path") is not None and v.get("binding") is not None
               for v in versions)
    assert metadata == {"protocolVersions": [{"version": "2025-1", "path": BASE, "binding": "HTTPS"}]}


async def test_CAT_01_01_catalog_request(client, parties: Parties, operator: Party, settings) -> None:
    tag = word()
    listing = await a_listing(client, parties, operator, tag)
    consumer = await buyer(client, parties)

    catalog = await catalog_of(client, consumer, tag)
    assert catalog["dataset"]
    assert any(d["@id"] == f"urn:market:listing:{listing['id']}" for d in catalog["dataset"])
    assert catalog["@type"] == "Catalog" and catalog["participantId"] == market_participant(settings)
    assert [s["endpointURL"] for s in catalog["service"]] == ["http://testserver.local/dsp/2025-1"]
    for dataset in catalog["dataset"]:
        validate({"@context": [CONTEXT], **dataset}, "catalog/dataset-schema.json")


async def test_CAT_01_02_dataset_request(client, parties: Parties, operator: Party) -> None:
    listing = await a_listing(client, parties, operator, word())
    consumer = await buyer(client, parties)
    dataset_id = f"urn:market:listing:{listing['id']}"

    r = await client.get(f"{BASE}/catalog/datasets/{dataset_id}", headers=consumer.auth)  # as the kit: unescaped
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    dataset = r.json()
    validate(dataset, "catalog/dataset-schema.json")
    assert dataset["@id"] == dataset_id and dataset["@type"] == "Dataset"
    [distribution] = dataset["distribution"]
    assert distribution["format"] == "HttpData-PULL"
    assert distribution["accessService"]["endpointURL"] == "http://testserver.local/dsp/2025-1"
    escaped = await client.get(f"{BASE}/catalog/datasets/{dataset_id.replace(':', '%3A')}", headers=consumer.auth)
    assert escaped.status_code == 200 and escaped.json() == dataset


async def test_CAT_01_03_dataset_request_not_found(client, parties: Parties, operator: Party) -> None:
    consumer = await buyer(client, parties)
    for unknown in ("4f0ad5e8-1d3c-4a4e-8f37-3b1a3c1f2f7e", "urn:market:listing:lst_00000000000000000000000000",
                    "urn:market:listing:"):
        body = catalog_error(await client.get(f"{BASE}/catalog/datasets/{unknown}", headers=consumer.auth), 404)
        assert body["@type"] == "CatalogError"


# -- the market's mapping ----------------------------------------------------------------

async def test_every_offer_carries_the_licence_in_odrl(client, parties: Parties, operator: Party) -> None:
    tag = word()
    assert LICENCE == {"purposes": ["research", "urban_planning"], "term_days": 365, "redistribution": False,
                       "territory": "domestic"}
    listing = await a_listing(client, parties, operator, tag)
    consumer = await buyer(client, parties)
    [dataset] = (await catalog_of(client, consumer, tag))["dataset"]
    assert dataset["dct:title"] == listing["title"]
    offers = {o["@id"]: o for o in dataset["hasPolicy"]}
    assert set(offers) == {f"urn:market:offer:{listing['id']}:{p['id']}" for p in listing["plans"]}
    for plan in listing["plans"]:
        offer = offers[f"urn:market:offer:{listing['id']}:{plan['id']}"]
        assert offer["@type"] == "Offer" and "target" not in offer
        assert offer["permission"] == [{"action": "use", "constraint": [
            {"leftOperand": "purpose", "operator": "isAnyOf",
             "rightOperand": [{"@id": "urn:market:purpose:research"}, {"@id": "urn:market:purpose:urban_planning"}]},
            {"leftOperand": "elapsedTime", "operator": "lteq",
             "rightOperand": {"@value": "P365D", "@type": "xsd:duration"}},
            {"leftOperand": "spatial", "operator": "eq", "rightOperand": "domestic"},
        ]}]
        assert offer["prohibition"] == [{"action": "distribute"}]
        assert offer["urn:market:term:model"] == plan["model"]
        assert offer["urn:market:term:delivery"] == "download"
        assert offer["http://schema.org/priceCurrency"] == "CNY"
    prices = {o["http://schema.org/price"] for o in offers.values()}
    assert prices == {"8800.00", "1200.00"}

    # Redistribution allowed, worldwide: no prohibition at all (never an empty list).
    free = await a_listing(client, parties, operator, tag, licence={**LICENCE, "redistribution": True,
                                                                    "territory": "global", "purposes": ["research"]})
    r = await client.get(f"{BASE}/catalog/datasets/urn:market:listing:{free['id']}", headers=consumer.auth)
    validate(r.json(), "catalog/dataset-schema.json")
    for offer in r.json()["hasPolicy"]:
        assert "prohibition" not in offer
        constraints = offer["permission"][0]["constraint"]
        assert constraints[0]["rightOperand"] == [{"@id": "urn:market:purpose:research"}]
        assert constraints[2] == {"leftOperand": "spatial", "operator": "eq", "rightOperand": "global"}


async def test_sandbox_and_api_plans_are_offered_with_their_delivery(client, parties: Parties,
                                                                     operator: Party) -> None:
    tag = word()
    holder, table, _ = await table_asset(client, parties, operator)
    listing = await publish(client, holder, table["asset_id"], tags=[tag], plans=[SANDBOX, METERED])
    [dataset] = (await catalog_of(client, await buyer(client, parties), tag))["dataset"]
    assert dataset["@id"] == f"urn:market:listing:{listing['id']}"
    assert {o["urn:market:term:delivery"]: o["urn:market:term:model"] for o in dataset["hasPolicy"]} == {
        "sandbox": "one_time", "api": "metered"}
    assert [o.get("urn:market:term:periodDays") for o in dataset["hasPolicy"]] == [None, 30]
    assert [d["format"] for d in dataset["distribution"]] == ["HttpData-PULL"]


async def test_private_plans_are_offered_to_their_buyers_alone(client, parties: Parties, operator: Party) -> None:
    tag = word()
    chosen, other = await buyer(client, parties), await buyer(client, parties)
    holder = await provider(client, parties)
    public = {"model": "one_time", "price": {"amount": 880_000, "currency": "CNY"}}
    private = {"model": "one_time", "price": {"amount": 500_000, "currency": "CNY"}, "private_to": [chosen.id]}
    both = await listed(client, holder, operator, tags=[tag], plans=[public, private])
    only_private = await listed(client, holder, operator, tags=[tag], plans=[private])
    public_offer = f"urn:market:offer:{both['id']}:{both['plans'][0]['id']}"
    private_offer = f"urn:market:offer:{both['id']}:{both['plans'][1]['id']}"

    seen = await catalog_of(client, chosen, tag)
    assert sorted(dataset_ids(seen)) == sorted(f"urn:market:listing:{x['id']}" for x in (both, only_private))
    offers = {o["@id"] for d in seen["dataset"] for o in d["hasPolicy"]}
    assert {public_offer, private_offer} <= offers

    seen = await catalog_of(client, other, tag)
    assert dataset_ids(seen) == [f"urn:market:listing:{both['id']}"]
    assert [o["@id"] for o in seen["dataset"][0]["hasPolicy"]] == [public_offer]
    r = await client.get(f"{BASE}/catalog/datasets/urn:market:listing:{only_private['id']}", headers=other.auth)
    catalog_error(r, 404)
    r = await client.get(f"{BASE}/catalog/datasets/urn:market:listing:{only_private['id']}", headers=chosen.auth)
    assert r.status_code == 200 and len(r.json()["hasPolicy"]) == 1

    # Its holder, a buyer too, is offered nothing of its own (it may not buy it).
    both_roles = await parties.verified(["provider", "buyer"])
    mine = await listed(client, await add_key(client, both_roles), operator, tags=[tag])
    assert f"urn:market:listing:{mine['id']}" not in dataset_ids(await catalog_of(client, both_roles, tag))


async def test_paused_frozen_and_delisted_listings_are_not_offered(client, parties: Parties, operator: Party,
                                                                   regulator: Party) -> None:
    tag = word()
    holder = await provider(client, parties)
    kept, paused, delisted, frozen = [await listed(client, holder, operator, tags=[tag]) for _ in range(4)]
    r = await client.patch(f"/v1/listings/{paused['id']}", json={"status": "paused"}, headers=holder.auth)
    assert r.status_code == 200, r.text
    r = await client.patch(f"/v1/listings/{delisted['id']}", json={"status": "delisted", "reason": "old"},
                           headers=holder.auth)
    assert r.status_code == 200, r.text
    r = await act(client, regulator, "action", None, {"action": "freeze_listing", "target": frozen["id"],
                                                      "reason": "misleading description"})
    assert r.status_code == 201, r.text
    consumer = await buyer(client, parties)

    assert dataset_ids(await catalog_of(client, consumer, tag)) == [f"urn:market:listing:{kept['id']}"]
    for gone in (paused, delisted, frozen):
        r = await client.get(f"{BASE}/catalog/datasets/urn:market:listing:{gone['id']}", headers=consumer.auth)
        catalog_error(r, 404)


async def test_the_catalog_is_paged_by_link_headers(client, parties: Parties, operator: Party) -> None:
    tag = word()
    holder = await provider(client, parties)
    made = [f"urn:market:listing:{(await listed(client, holder, operator, tags=[tag]))['id']}" for _ in range(3)]
    consumer = await buyer(client, parties)
    seen: list[str] = []
    url: str | None = f"{BASE}/catalog/request?limit=2"
    pages = 0
    while url:
        r = await ask_catalog(client, consumer, tag, url=url)
        assert r.status_code == 200, r.text
        validate(r.json(), "catalog/catalog-schema.json")
        seen += dataset_ids(r.json())
        pages += 1
        link = r.headers.get("link")
        if link is None:
            url = None
        else:
            assert link.startswith("<http://testserver.local/dsp/2025-1/catalog/request?") and link.endswith(
                '>; rel="next"'), link
            url = link[1:link.index(">")].replace("http://testserver.local", "")
    assert pages == 2 and sorted(seen) == sorted(made) and len(seen) == 3

    for bad in ("0", "501", "x"):
        catalog_error(await ask_catalog(client, consumer, tag, url=f"{BASE}/catalog/request?limit={bad}"), 400)
    catalog_error(await ask_catalog(client, consumer, tag, url=f"{BASE}/catalog/request?cursor=nonsense"), 400)


async def test_the_filter_narrows_the_catalog(client, parties: Parties, operator: Party) -> None:
    tag = word()
    listing = await a_listing(client, parties, operator, tag)
    consumer = await buyer(client, parties)
    ours = f"urn:market:listing:{listing['id']}"
    for wanted in ({"purpose": "urn:market:purpose:research"}, {"purpose": "urban_planning"}):
        r = await ask_catalog(client, consumer, filter=[{"q": tag}, wanted])
        assert r.status_code == 200 and dataset_ids(r.json()) == [ours], r.text
    r = await ask_catalog(client, consumer, filter=[{"q": tag, "purpose": "urn:market:purpose:marketing"}])
    assert r.status_code == 200 and "dataset" not in r.json(), r.text
    validate(r.json(), "catalog/catalog-schema.json")
    for bad in ({"colour": "red"}, "q", {"q": 3}, {}):
        catalog_error(await ask_catalog(client, consumer, filter=[bad]), 400)
    catalog_error(await ask_catalog(client, consumer, filter={"q": tag}), 400)


async def test_bad_messages_are_400_catalog_errors(client, parties: Parties) -> None:
    consumer = await buyer(client, parties)
    url = f"{BASE}/catalog/request"
    for body in ({**catalog_request(), "@type": "DatasetRequestMessage"},
                 {k: v for k, v in catalog_request().items() if k != "@context"},
                 {**catalog_request(), "@context": ["https://example.com/other.jsonld"]},
                 {**catalog_request(), "@context": CONTEXT},
                 [catalog_request()]):
        catalog_error(await client.post(url, json=body, headers=consumer.auth), 400)
    for raw in (b"not json", b"", b"\xff\xfe"):
        r = await client.post(url, content=raw, headers={**consumer.auth, "Content-Type": "application/json"})
        catalog_error(r, 400)


async def test_no_token_or_not_a_verified_buyer_is_404(client, parties: Parties, operator: Party) -> None:
    listing = await a_listing(client, parties, operator, word())
    dataset = f"{BASE}/catalog/datasets/urn:market:listing:{listing['id']}"
    unverified = await parties.sign_up(["buyer"])
    seller = await parties.verified(["provider"])
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eDp5"}, unverified.auth,
                    seller.auth):
        catalog_error(await client.post(f"{BASE}/catalog/request", json=catalog_request(), headers=headers), 404)
        catalog_error(await client.get(dataset, headers=headers), 404)
    # Not even a bad message is told apart from a missing token.
    r = await client.post(f"{BASE}/catalog/request", content=b"nonsense")
    assert catalog_error(r, 404)["@type"] == "CatalogError"
    assert json.loads(r.content)["reason"]


def test_the_odrl_helpers_read_back_what_they_write() -> None:
    assert odrl.purpose_iri("research") == "urn:market:purpose:research"
    assert odrl.parse_purpose_iri("urn:market:purpose:research") == "research"
    assert odrl.parse_purpose_iri({"@id": "urn:market:purpose:ai_training"}) == "ai_training"
    for other in ("research", "urn:market:purpose:", "urn:market:offer:x", 3, None, {"@value": "x"}):
        assert odrl.parse_purpose_iri(other) is None
    assert odrl.duration(365) == "P365D" and odrl.parse_duration("P365D") == 365
    assert odrl.parse_duration({"@value": "P30D", "@type": "xsd:duration"}) == 30
    assert odrl.parse_duration("P1Y") is None and odrl.parse_duration("P0D") is None
    agreed = odrl.rules({**LICENCE, "redistribution": True}, ["research"])
    assert list(agreed) == ["permission"]
    assert agreed["permission"][0]["constraint"][0]["rightOperand"] == [{"@id": "urn:market:purpose:research"}]
    validate({"@id": "urn:market:agreement:ord_x", "@type": "Agreement", "target": "urn:market:listing:lst_x",
              "assigner": "urn:market:m", "assignee": "urn:market:account:acct_x",
              **odrl.rules(LICENCE, ["research"])}, "negotiation/contract-schema.json")
