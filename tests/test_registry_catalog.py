"""The registry's reference data and lists over HTTP (docs/API.md "Registry"): the closed list
of categories (``GET /v1/categories``, 422 for any other value, search by its names),
行政区划 codes (``GET /v1/regions/{code}``), and ``GET /v1/assets?provider=me``."""

from typing import Any

import pytest

from market.registry import categories, regions
from tests.conftest import Parties, Party, assert_problem, walk_ids
from tests.listings.support import listable_asset, publish, word
from tests.registry_support import ASSET, draft, provider, read_asset, registered_asset

EXPECTED = [
    ("transport", "交通运输", "Transport"), ("logistics", "物流"), ("energy", "能源"), ("weather", "气象"),
    ("finance", "金融"), ("enterprise_credit", "企业征信"), ("healthcare", "医疗健康"), ("geospatial", "地理空间"),
    ("telecom", "通信"), ("retail", "商贸零售"), ("manufacturing", "工业制造"), ("agriculture", "农业"),
    ("education", "教育"), ("tourism", "文化旅游"), ("environment", "生态环境"), ("urban", "城市建设"),
    ("public_service", "公共服务"), ("other", "其他"),
]


# -- GET /v1/categories --------------------------------------------------------------------


async def test_categories_are_the_closed_bilingual_list_in_order(client: Any) -> None:
    r = await client.get("/v1/categories")  # anyone: no token
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(i["id"], i["name_zh"]) for i in items] == [e[:2] for e in EXPECTED]
    assert items[0] == {"id": "transport", "name_zh": "交通运输", "name_en": "Transport"}
    assert all(set(i) == {"id", "name_zh", "name_en"} and i["name_en"] for i in items)
    assert "max-age" in r.headers["cache-control"]


# -- category on create, patch and filters -----------------------------------------------------


async def test_every_category_id_is_accepted_and_shown(client: Any, parties: Parties) -> None:
    p = await provider(client, parties)
    for category in categories.IDS:
        assert (await draft(client, p, category=category))["category"] == category


@pytest.mark.parametrize("value", ["tourism2", "交通", "交通运输", "Transport", "transport,energy", "", 7])
async def test_a_category_not_of_the_list_is_422_naming_the_field_and_the_ids(
        client: Any, parties: Parties, value: Any) -> None:
    p = await provider(client, parties)
    mine = await walk_ids(client, "/v1/assets", p.auth, provider="me")
    body = assert_problem(await client.post("/v1/assets", json={**ASSET, "category": value}, headers=p.auth), 422,
                          "validation-error")
    assert [e["field"] for e in body["errors"]] == ["category"]
    if isinstance(value, str) and value:
        assert "transport" in body["errors"][0]["message"] and "public_service" in body["errors"][0]["message"]
    assert await walk_ids(client, "/v1/assets", p.auth, provider="me") == mine  # nothing created


async def test_patching_to_a_category_not_of_the_list_changes_nothing(client: Any, parties: Parties) -> None:
    p = await provider(client, parties)
    asset = await draft(client, p, category="weather")
    url = f"/v1/assets/{asset['id']}"
    for value in ("气象", "meteorology", "WEATHER"):
        body = assert_problem(await client.patch(url, json={"category": value}, headers=p.auth), 422)
        assert [e["field"] for e in body["errors"]] == ["category"], body
    assert_problem(await client.patch(url, json={"category": None}, headers=p.auth), 422)
    after = await read_asset(client, asset["id"], p)
    assert after["category"] == "weather" and after["updated_at"] == asset["updated_at"]
    r = await client.patch(url, json={"category": "environment"}, headers=p.auth)
    assert r.status_code == 200 and r.json()["category"] == "environment", r.text


async def test_list_and_search_filters_take_ids_only(client: Any, parties: Parties) -> None:
    p = await provider(client, parties)
    education = await draft(client, p, category="education")
    await draft(client, p, category="urban")
    assert await walk_ids(client, "/v1/assets", p.auth, provider="me", category="education") == [education["id"]]
    for path in ("/v1/assets", "/v1/listings"):
        for headers in ({}, p.auth):
            body = assert_problem(await client.get(path, params={"category": "教育"}, headers=headers), 422,
                                  "unknown-category")
            assert body["errors"][0]["field"] == "category" and body["allowed"] == list(categories.IDS)


async def test_search_finds_a_listing_by_its_categorys_id_and_names(client: Any, parties: Parties,
                                                                     operator: Party) -> None:
    p = await provider(client, parties)
    asset = await listable_asset(client, p, operator, category="tourism")
    marker = word()  # this test's listing alone
    listing = await publish(client, p, asset["id"], title=f"Heritage sites {marker}", summary="", description="",
                            tags=[])

    async def found(q: str) -> list[str]:
        r = await client.get("/v1/listings", params={"q": f"{marker} {q}"})
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    for q in ("文化旅游", "旅游", "文化", "tourism", "Culture"):
        assert await found(q) == [listing["id"]], q
    for q in ("交通", "transport", "其他"):
        assert await found(q) == [], q
    r = await client.get("/v1/listings", params={"q": marker, "category": "tourism"})
    assert r.json()["facets"]["category"] == {"tourism": 1}


# -- GET /v1/regions/{code} ---------------------------------------------------------------------


@pytest.mark.parametrize(("code", "name", "province", "city", "level"), [
    ("440300", "深圳市", "广东省", "深圳市", "prefecture"),
    ("440303", "罗湖区", "广东省", "深圳市", "county"),
    ("440304", "福田区", "广东省", "深圳市", "county"),
    ("440305", "南山区", "广东省", "深圳市", "county"),
    ("440000", "广东省", "广东省", None, "province"),
    ("110000", "北京市", "北京市", None, "province"),
    ("110105", "朝阳区", "北京市", "北京市", "county"),  # a municipality is its districts' city
    ("500229", "城口县", "重庆市", "重庆市", "county"),
    ("429004", "仙桃市", "湖北省", None, "county"),  # governed by its province directly
    ("441900", "东莞市", "广东省", "东莞市", "prefecture"),
])
async def test_a_region_by_its_code(client: Any, code: str, name: str, province: str, city: str | None,
                                    level: str) -> None:
    r = await client.get(f"/v1/regions/{code}")
    assert r.status_code == 200, r.text
    assert r.json() == {"code": code, "name_zh": name, "province": province, "city": city, "level": level,
                        "current": True}


async def test_an_abolished_code_keeps_its_last_name(client: Any) -> None:
    """Older USCCs carry codes merged away since: 371202 莱城区 of 莱芜市 (merged into 济南, 2019)."""
    r = await client.get("/v1/regions/371202")
    assert r.status_code == 200, r.text
    assert r.json() == {"code": "371202", "name_zh": "莱城区", "province": "山东省", "city": "莱芜市",
                        "level": "county", "current": False}


@pytest.mark.parametrize("code", ["999999", "440399", "000000"])
async def test_an_unknown_code_is_404(client: Any, code: str) -> None:
    assert_problem(await client.get(f"/v1/regions/{code}"), 404, "not-found")


@pytest.mark.parametrize("code", ["4403", "4403000", "44030X", "abcdef", "４４０３００", "440300 "])
async def test_a_malformed_code_is_422(client: Any, code: str) -> None:
    body = assert_problem(await client.get(f"/v1/regions/{code}"), 422, "bad-region-code")
    assert body["errors"][0]["field"] == "code"


def test_the_shipped_data_covers_every_level() -> None:
    assert regions.count() >= 3200
    known = [regions.lookup(f"{p}0000") for p in ("11", "12", "31", "44", "50", "65", "81", "82")]
    assert all(r is not None and r.level == "province" for r in known)
    assert regions.name("440300") == "深圳市" and regions.name("440305") == "南山区"
    assert regions.name("4403") is None and regions.lookup("nonsense") is None and regions.name("") is None


# -- GET /v1/assets?provider= ----------------------------------------------------------------------


async def test_provider_me_lists_the_callers_own_assets_drafts_included(client: Any, parties: Parties,
                                                                         operator: Party) -> None:
    p = await provider(client, parties)
    other = await provider(client, parties)
    mine = [(await draft(client, p))["id"], (await registered_asset(client, p, operator))["id"]]
    await draft(client, other)
    await registered_asset(client, other, operator)
    assert sorted(await walk_ids(client, "/v1/assets", p.auth, provider="me")) == sorted(mine)
    assert await walk_ids(client, "/v1/assets", p.auth, provider=p.id) == \
        await walk_ids(client, "/v1/assets", p.auth, provider="me")
    drafts = await walk_ids(client, "/v1/assets", p.auth, provider="me", status="draft")
    assert drafts == [mine[0]]
    # Staff have no assets of their own.
    assert await walk_ids(client, "/v1/assets", operator.auth, provider="me") == []


async def test_provider_me_without_a_token_is_401(client: Any) -> None:
    assert_problem(await client.get("/v1/assets", params={"provider": "me"}), 401, "missing-token")
    assert_problem(await client.get("/v1/assets", params={"provider": "me"},
                                    headers={"Authorization": "Bearer mkt_nonsense"}), 401, "bad-token")


async def test_another_providers_assets_are_listed_as_the_caller_may_see_them(
        client: Any, parties: Parties, operator: Party, regulator: Party) -> None:
    holder = await provider(client, parties)
    hidden = (await draft(client, holder))["id"]
    public = (await registered_asset(client, holder, operator))["id"]
    someone = await provider(client, parties)
    assert await walk_ids(client, "/v1/assets", someone.auth, provider=holder.id) == [public]
    r = await client.get("/v1/assets", params={"provider": holder.id})  # anonymous
    assert [i["id"] for i in r.json()["items"]] == [public]
    for staff in (operator, regulator):
        assert sorted(await walk_ids(client, "/v1/assets", staff.auth, provider=holder.id)) == sorted([hidden, public])
    assert await walk_ids(client, "/v1/assets", someone.auth, provider="acct_nobody") == []
