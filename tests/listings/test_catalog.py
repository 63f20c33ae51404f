"""``GET /v1/catalog``: DCAT-AP in JSON-LD, read by a real JSON-LD parser (rdflib) without
network, with the classes and properties a CKAN or EDC harvester looks for."""

from typing import Any

from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, SKOS, XSD

from market.listings.catalog import decimal_price
from tests.listings.support import PLANS, listed, word
from tests.registry_support import own_app, provider

SCHEMA = Namespace("http://schema.org/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")


def graph_of(body: bytes) -> Graph:
    g = Graph()
    g.parse(data=body, format="json-ld")  # the context is inline: nothing is fetched
    return g


async def test_the_catalog_is_dcat_json_ld(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, public_url="https://exchange.example") as app:
        client, parties, operator = app.client, app.parties, app.operator
        holder = await provider(client, parties)
        tag = word()
        listing = await listed(client, holder, operator, tags=[tag, "交通"])
        other = await listed(client, holder, operator)
        paused = await listed(client, holder, operator)
        r = await client.patch(f"/v1/listings/{paused['id']}", json={"status": "paused"}, headers=holder.auth)
        assert r.status_code == 200

        r = await client.get("/v1/catalog")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
        assert isinstance(r.json()["@context"], dict)
        g = graph_of(r.content)
        catalog = URIRef("https://exchange.example/v1/catalog")
        assert (catalog, RDF.type, DCAT.Catalog) in g
        datasets = set(g.objects(catalog, DCAT.dataset))
        base = "https://exchange.example/v1/listings/"
        assert datasets == {URIRef(base + listing["id"]), URIRef(base + other["id"])}  # not the paused one

        ds = URIRef(base + listing["id"])
        assert (ds, RDF.type, DCAT.Dataset) in g
        assert g.value(ds, DCTERMS.identifier) == Literal(listing["registration_number"])
        assert g.value(ds, DCTERMS.title) == Literal(listing["title"])
        assert {str(k) for k in g.objects(ds, DCAT.keyword)} == {tag, "交通"}
        theme = g.value(ds, DCAT.theme)
        assert (theme, RDF.type, SKOS.Concept) in g and g.value(theme, SKOS.prefLabel) == Literal("transport")
        publisher = g.value(ds, DCTERMS.publisher)
        assert (publisher, RDF.type, FOAF.Agent) in g and g.value(publisher, FOAF.name) == Literal(holder.party.body["name"])
        assert g.value(ds, DCTERMS.issued).datatype == XSD.dateTime
        assert g.value(ds, DCTERMS.license) is not None
        distributions = list(g.objects(ds, DCAT.distribution))
        assert len(distributions) == len(PLANS)
        prices = set()
        for d in distributions:
            assert (d, RDF.type, DCAT.Distribution) in g
            assert g.value(d, DCAT.accessURL) == ds
            offer = g.value(d, SCHEMA.offers)
            price = g.value(offer, SCHEMA.price)
            assert price.datatype == XSD.decimal
            prices.add((price.toPython(), str(g.value(offer, SCHEMA.priceCurrency))))
        from decimal import Decimal
        assert prices == {(Decimal("8800.00"), "CNY"), (Decimal("1200.00"), "CNY")}


async def test_the_catalog_is_paged(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, public_url="https://exchange.example") as app:
        holder = await provider(app.client, app.parties)
        made = [(await listed(app.client, holder, app.operator))["id"] for _ in range(3)]
        seen: list[str] = []
        url: Any = "/v1/catalog?limit=2"
        while url:
            r = await app.client.get(url)
            assert r.status_code == 200, r.text
            g = graph_of(r.content)
            seen += [str(d).rsplit("/", 1)[1] for d in g.objects(URIRef("https://exchange.example/v1/catalog"),
                                                                  DCAT.dataset)]
            nxt = g.value(g.value(URIRef("https://exchange.example/v1/catalog"), HYDRA.view), HYDRA.next)
            url = str(nxt).replace("https://exchange.example", "") if nxt is not None else None
        assert sorted(seen) == sorted(made)


def test_prices_are_exact_decimals() -> None:
    assert decimal_price(880_000, "CNY") == "8800.00"
    assert decimal_price(1, "CNY") == "0.01"
    assert decimal_price(0, "CNY") == "0.00"
    assert decimal_price(1500, "JPY") == "1500"
    assert decimal_price(10**15 - 1, "CNY") == "9999999999999.99"
