"""The HTTP habits of the market: HEAD on every GET route, the index at ``/``, problem
types that resolve to a page, the written contract served, money that names its unit."""

import re
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from market.core import money
from market.oversight import trades
from market.trading.delivery import Sending
from market.web.docs import anchors
from market.web.problem_kinds import PROBLEM_KINDS
from tests.conftest import Party, assert_problem
from tests.registry_support import own_app
from tests.trading.test_delivery import bought, deliveries_of, url

BASE = "http://testserver.local"
VOLATILE = {"x-request-id", "date", "set-cookie"}


async def same_as_get(client: Any, path: str, **headers: str) -> Any:
    """HEAD ``path``: the status and headers of a GET (but the per-request ones), no body."""
    got = await client.get(path, headers=headers)
    head = await client.head(path, headers=headers)
    assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
    assert head.content == b"", path
    strip = lambda h: {k: v for k, v in h.items() if k not in VOLATILE}  # noqa: E731
    assert strip(head.headers) == strip(got.headers), path
    return got


# -- HEAD ------------------------------------------------------------------------------


async def test_head_answers_like_get_without_a_body(client, operator: Party) -> None:
    r = await same_as_get(client, "/health")
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content) > 0
    await same_as_get(client, "/v1/listings")  # public
    await same_as_get(client, "/v1/ledger/checkpoint")
    r = await same_as_get(client, "/v1/accounts/me", **operator.auth)  # authenticated
    assert r.status_code == 200
    await same_as_get(client, "/schema/openapi.json")  # the OpenAPI document
    await same_as_get(client, "/")
    await same_as_get(client, "/problems/self-dealing")


async def test_head_keeps_the_refusals_of_get(client, operator: Party) -> None:
    # 401 stays 401 (with its problem's headers), 404 stays 404, no body either way.
    r = await client.head("/v1/accounts/me")
    assert r.status_code == 401 and r.content == b"" and r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["content-length"]) > 0  # the length of the problem a GET gets
    r = await client.head("/v1/accounts/me", headers={"Authorization": "Bearer mkt_nobody"})
    assert r.status_code == 401 and r.content == b""
    r = await client.head("/v1/assets/ast_00000000000000000000000000", headers=operator.auth)
    assert r.status_code == 404 and r.content == b""
    # A path with no GET: HEAD is not allowed there either, and Allow says what is.
    r = await client.head("/v1/orders/ord_00000000000000000000000000/payment", headers=operator.auth)
    assert r.status_code == 405 and "HEAD" not in r.headers["allow"] and "POST" in r.headers["allow"]


async def test_allow_lists_head_wherever_get_is_allowed(client) -> None:
    r = await client.options("/v1/accounts")
    assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    r = await client.request("TRACE", "/health")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    r = await client.options("/v1/orders/ord_00000000000000000000000000/payment")
    assert r.headers["allow"] == "OPTIONS, POST"


async def test_head_of_content_streams_nothing_and_records_no_delivery(client, parties, operator,
                                                                       monkeypatch) -> None:
    d = await bought(client, parties, operator)
    order, b = d["order"], d["buyer"]
    pieces: list[int] = []
    real = Sending.__anext__

    async def counted(self: Sending) -> bytes:
        pieces.append(1)
        return await real(self)

    monkeypatch.setattr(Sending, "__anext__", counted)
    head = await client.head(url(order), headers=b.auth)
    assert head.status_code == 200 and head.content == b""
    assert pieces == [] and deliveries_of(client, order["id"]) == []  # no blob read, nothing recorded
    got = await client.get(url(order), headers=b.auth)
    assert got.content == d["content"] and pieces
    for name in ("content-length", "repr-digest", "etag", "accept-ranges", "content-type"):
        assert head.headers[name] == got.headers[name], name
    ranged = await client.head(url(order), headers={**b.auth, "Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "10" and ranged.content == b""
    assert len(deliveries_of(client, order["id"])) == 1  # the GET's alone
    # Not the buyer: HEAD is refused as GET is.
    assert (await client.head(url(order), headers=d["holder"].auth)).status_code == 403


async def test_head_of_the_trades_csv_runs_no_query(client, regulator, monkeypatch) -> None:
    started: list[int] = []
    real = trades.csv_chunks

    async def watched(*args: Any, **kwargs: Any) -> Any:
        started.append(1)
        async for chunk in real(*args, **kwargs):
            yield chunk

    monkeypatch.setattr(trades, "csv_chunks", watched)
    csv = {**regulator.auth, "Accept": "text/csv"}
    head = await client.head("/v1/oversight/trades", headers=csv)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"].startswith("text/csv")
    assert started == []
    assert (await client.get("/v1/oversight/trades", headers=csv)).content.startswith(b"\xef\xbb\xbf")
    assert started == [1]


def get_paths(app: Any) -> list[str]:
    """A concrete path for every registered GET route (parameters filled with a placeholder)."""
    paths = []
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "GET" in route.methods:
            paths.append(re.sub(r"\{[^}]+\}", "x", route.path_format) or "/")
    return sorted(set(paths))


async def test_every_get_route_answers_head(app, client, operator: Party) -> None:
    paths = get_paths(app)
    assert {"/", "/health", "/problems/x", "/v1/orders/x/content", "/v1/catalog"} <= set(paths)
    assert len(paths) > 60
    for auth in ({}, operator.auth):
        for path in paths:
            got = await client.get(path, headers=auth)
            head = await client.head(path, headers=auth)
            assert head.status_code != 405, path
            assert head.status_code == got.status_code and head.content == b"", (path, head.status_code)
            assert head.headers.get("content-type") == got.headers.get("content-type"), path


# -- the index ---------------------------------------------------------------------------


async def test_the_index_names_the_market_and_links_everything(client, settings) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    index = r.json()
    assert index["name"] == settings.name and index["version"]
    links = index["links"]
    assert links["self"] == f"{BASE}/"
    assert {links[k] for k in ("docs", "openapi", "contract", "catalog", "ledger_key", "ledger_checkpoint",
                               "problems")} == {f"{BASE}/schema", f"{BASE}/schema/openapi.json", f"{BASE}/docs/api",
                                                f"{BASE}/v1/catalog", f"{BASE}/v1/ledger/key",
                                                f"{BASE}/v1/ledger/checkpoint", f"{BASE}/problems"}
    for link in links.values():  # every link resolves
        assert link.startswith(BASE)
        assert (await client.get(link.removeprefix(BASE) or "/")).status_code == 200, link
    # The DCAT catalog's homepage is this index.
    catalog = (await client.get("/v1/catalog")).json()
    assert catalog["foaf:homepage"]["@id"] == links["self"]


async def test_the_index_and_problem_types_use_the_public_url(databases, tmp_path) -> None:
    async with own_app(databases, tmp_path, public_url="https://exchange.example/", name="深圳数据交易所") as m:
        index = (await m.client.get("/")).json()
        assert index["name"] == "深圳数据交易所"
        assert all(link.startswith("https://exchange.example/") for link in index["links"].values()), index
        assert index["links"]["catalog"] == "https://exchange.example/v1/catalog"
        problem = assert_problem(await m.client.get("/v1/accounts/me"), 401, "missing-token")
        assert problem["type"] == "https://exchange.example/problems/missing-token"
        catalog = (await m.client.get("/v1/catalog")).json()
        assert catalog["foaf:homepage"]["@id"] == index["links"]["self"]


# -- problem types ----------------------------------------------------------------------


async def test_a_problem_type_resolves_to_its_page(client, operator: Party) -> None:
    for response, kind in [(await client.get("/v1/accounts/me"), "missing-token"),
                           (await client.get("/v1/listings", params={"limit": 0}), None),
                           (await client.put("/health"), "method-not-allowed"),
                           (await client.get("/v1/assets/ast_00000000000000000000000000",
                                             headers=operator.auth), "not-found")]:
        problem = response.json()
        assert problem["type"].startswith(f"{BASE}/problems/"), problem
        page = await client.get(problem["type"].removeprefix(BASE), headers={"Accept": "application/json"})
        assert page.status_code == 200, problem
        explained = page.json()
        assert explained["kind"] == problem["type"].rsplit("/", 1)[1] == (kind or explained["kind"])
        assert explained["status"] == problem["status"] and explained["type"] == problem["type"]


async def test_every_problem_kind_has_a_page_and_json(client) -> None:
    for kind, entry in PROBLEM_KINDS.items():
        page = await client.get(f"/problems/{kind}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), kind
        assert entry.title.replace("'", "&#x27;") in page.text and f"/docs/{entry.doc}" in page.text, kind
        r = await client.get(f"/problems/{kind}", headers={"Accept": "application/json"})
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert {k: body[k] for k in ("kind", "title", "status", "explanation", "what_to_do")} == {
            "kind": kind, "title": entry.title, "status": entry.status, "explanation": entry.explanation,
            "what_to_do": entry.what_to_do}
        assert body["type"] == f"{BASE}/problems/{kind}" and body["doc"] == f"{BASE}/docs/{entry.doc}"


async def test_the_problems_index_lists_every_kind(client) -> None:
    r = await client.get("/problems", headers={"Accept": "application/json"})
    assert [p["kind"] for p in r.json()["items"]] == sorted(PROBLEM_KINDS)
    page = await client.get("/problems")
    assert page.headers["content-type"].startswith("text/html")
    assert all(f'href="{BASE}/problems/{kind}"' in page.text for kind in PROBLEM_KINDS)


async def test_an_unknown_problem_kind_is_404(client) -> None:
    for path in ("/problems/no-such-thing", "/problems/SELF-DEALING", "/problems/self-dealing/x"):
        assert_problem(await client.get(path), 404)
        assert_problem(await client.get(path, headers={"Accept": "application/json"}), 404)


def test_every_problem_links_to_a_section_that_exists() -> None:
    for entry in PROBLEM_KINDS.values():
        page, _, anchor = entry.doc.partition("#")
        assert anchor in anchors(page), (entry.kind, entry.doc)


# -- the written contract ---------------------------------------------------------------


async def test_the_contract_is_served_as_a_page_and_as_markdown(client) -> None:
    from market.web.docs import DOCS_DIR

    page = await client.get("/docs/api")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="conventions"' in page.text and 'id="orders"' in page.text and "<table>" in page.text
    md = await client.get("/docs/ledger", headers={"Accept": "text/markdown"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text == (DOCS_DIR / "LEDGER.md").read_text(encoding="utf-8")
    for bad in ("/docs/README", "/docs/Ledger", "/docs/API.md"):
        assert_problem(await client.get(bad), 404)


# -- money in words ----------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (50_000, "CNY", "500.00 CNY"), (500, "CNY", "5.00 CNY"), (1, "CNY", "0.01 CNY"), (0, "CNY", "0.00 CNY"),
    (-5, "CNY", "-0.05 CNY"), (-123_456, "USD", "-1234.56 USD"), (500, "JPY", "500 JPY"), (0, "KRW", "0 KRW"),
    (1_234, "KWD", "1.234 KWD"), (10**15 - 1, "CNY", "9999999999999.99 CNY"),
    (10**30 + 1, "EUR", "10000000000000000000000000000.01 EUR"),  # exact: no float anywhere
])
def test_human_money_names_its_unit(amount: int, currency: str, text: str) -> None:
    assert money.human(amount, currency) == text
    assert money.Money(amount=amount, currency=currency).human() == text if 0 <= amount <= money.MAX_AMOUNT else True


def test_human_money_grouped_for_pages() -> None:
    assert money.human(1_500_000, "CNY", grouped=True) == "15,000.00 CNY"
    assert money.human(-123_456_789, "JPY", grouped=True) == "-123,456,789 JPY"


@pytest.mark.parametrize("amount", [5.0, True, "500", None])
def test_human_money_refuses_what_is_not_minor_units(amount: Any) -> None:
    with pytest.raises(TypeError):
        money.human(amount, "CNY")


async def test_a_real_server_answers_head_and_keeps_the_connection(databases, tmp_path) -> None:
    """Through uvicorn: a HEAD response ends at its head (the server knows the request was
    HEAD), and the same connection then serves the next request."""
    import httpx

    from tests.conftest import make_settings
    from tests.serving import serving

    settings = make_settings(tmp_path, await databases.new())
    async with serving(settings) as served, httpx.AsyncClient(base_url=served.base, timeout=10) as http:
        head = await http.head("/health")
        got = await http.get("/health")
        assert head.status_code == got.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
        head = await http.head("/v1/accounts/me")
        assert head.status_code == 401 and head.content == b""
        assert (await http.get("/")).json()["links"]["self"] == f"{served.base}/"
