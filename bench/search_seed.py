"""Bulk seeding for ``bench/search.py``: providers, registered assets and active listings.

Publishing N listings through the HTTP flow (draft, upload, signed claim, review,
publish) takes far too long at 100,000, so the rows are written in bulk, in batches of
2,000 inside a few transactions. What search reads is built with the market's own code:
each search document comes from ``market.listings.index.document(listing, asset)`` (the
tokens the service writes), its text in the engine's index (SQLite's ``listing_fts``,
PostgreSQL's ``tsv``) from ``index.text_rows``, the statement ``index_listing`` uses,
``terms_sha256`` from ``service.terms_digest``, and
``listed`` is stored by ``index.refresh_listed`` (``access.orderable_clause``), so a
seeded listing is found exactly when the service would find it. Ledger entries are not
written: search never reads the ledger.

The text is made up but varied: titles mix Chinese and English from ~40 cities and
districts, six categories with ~20 domain nouns each, and years; summaries and
descriptions are a few sentences from phrase lists. A category word matches about one
listing in six, a domain noun about one in a hundred, a city about one in forty.
"""

import json
import os
import random
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core import db
from market.core.ids import new_id
from market.core.types import utcnow
from market.listings import index
from market.listings.models import Listing, ListingDoc, ListingTerms
from market.listings.schemas import PURPOSES
from market.listings.service import terms_digest
from market.registry.models import Asset, AssetRevision
from market.tools.client import trial_uscc

BATCH = 2000

# (Chinese, English) city or district names.
CITIES = [
    ("深圳", "Shenzhen"), ("广州", "Guangzhou"), ("东莞", "Dongguan"), ("佛山", "Foshan"), ("珠海", "Zhuhai"),
    ("惠州", "Huizhou"), ("中山", "Zhongshan"), ("江门", "Jiangmen"), ("肇庆", "Zhaoqing"), ("汕头", "Shantou"),
    ("湛江", "Zhanjiang"), ("韶关", "Shaoguan"), ("香港", "Hong Kong"), ("澳门", "Macao"), ("上海", "Shanghai"),
    ("北京", "Beijing"), ("杭州", "Hangzhou"), ("南京", "Nanjing"), ("苏州", "Suzhou"), ("成都", "Chengdu"),
    ("重庆", "Chongqing"), ("武汉", "Wuhan"), ("西安", "Xian"), ("长沙", "Changsha"), ("厦门", "Xiamen"),
    ("福州", "Fuzhou"), ("南宁", "Nanning"), ("海口", "Haikou"), ("天津", "Tianjin"), ("青岛", "Qingdao"),
    ("南山", "Nanshan"), ("福田", "Futian"), ("罗湖", "Luohu"), ("宝安", "Baoan"), ("龙岗", "Longgang"),
    ("龙华", "Longhua"), ("光明", "Guangming"), ("坪山", "Pingshan"), ("天河", "Tianhe"), ("番禺", "Panyu"),
]

# category code -> (Chinese name, English name, [(noun in Chinese, noun in English), ...])
CATEGORIES: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "transport": ("交通", "transport", [
        ("出行数据", "mobility data"), ("公交线路", "bus routes"), ("公交刷卡客流", "bus ridership"),
        ("地铁客流", "metro ridership"), ("地铁站间OD", "metro OD matrix"), ("道路车速", "road speed"),
        ("拥堵指数", "congestion index"), ("停车泊位", "parking occupancy"), ("共享单车骑行", "bike sharing trips"),
        ("网约车订单", "ride hailing orders"), ("出租车轨迹", "taxi trajectories"), ("交通事故", "traffic accidents"),
        ("信号灯配时", "signal timing"), ("路口流量", "intersection counts"), ("公交到站预测", "bus arrival predictions"),
        ("通勤走廊", "commuting corridors"), ("过江隧道流量", "tunnel traffic"), ("高速收费站流量", "toll plaza traffic"),
        ("航班准点率", "flight punctuality"), ("铁路客运量", "rail passengers"),
    ]),
    "logistics": ("物流", "logistics", [
        ("货运轨迹", "freight tracks"), ("仓库吞吐量", "warehouse throughput"), ("快递揽收量", "parcel pickups"),
        ("城配时效", "city delivery times"), ("冷链温度", "cold chain temperatures"), ("港口集装箱", "port containers"),
        ("货车通行", "truck movements"), ("清关时效", "customs clearance times"), ("末端派送", "last mile deliveries"),
        ("即时配送运力", "courier capacity"), ("配送路线", "delivery routes"), ("航运船期", "shipping schedules"),
        ("保税仓库存", "bonded stock"), ("物流园区", "logistics parks"), ("货代报价", "freight quotes"),
        ("空运货量", "air cargo volume"), ("铁路货运", "rail freight"), ("跨境包裹", "cross border parcels"),
        ("智能快递柜", "parcel lockers"), ("运单异常", "waybill exceptions"),
    ]),
    "weather": ("气象", "weather", [
        ("降水预报", "rainfall forecast"), ("地面观测", "station observations"), ("台风路径", "typhoon tracks"),
        ("雷电定位", "lightning strikes"), ("内涝积水", "urban flooding"), ("空气质量", "air quality"),
        ("高温热浪", "heat waves"), ("海洋浮标", "ocean buoys"), ("雷达回波", "radar echoes"),
        ("风场再分析", "wind reanalysis"), ("农业积温", "growing degree days"), ("干旱指数", "drought index"),
        ("紫外线指数", "uv index"), ("能见度观测", "visibility observations"), ("海浪预报", "wave forecast"),
        ("气温格点", "gridded temperature"), ("暴雨预警", "rainstorm warnings"), ("日照时数", "sunshine hours"),
        ("湿度观测", "humidity observations"), ("卫星云图", "satellite imagery"),
    ]),
    "energy": ("能源", "energy", [
        ("用电负荷", "power load"), ("充电桩记录", "charging sessions"), ("光伏发电量", "solar generation"),
        ("楼宇能耗", "building energy use"), ("储能运行", "battery storage operation"), ("加油站销量", "fuel sales"),
        ("碳排放因子", "carbon emission factors"), ("配电台区", "distribution feeders"), ("工商业用电量", "commercial power use"),
        ("风电出力", "wind power output"), ("燃气用量", "gas consumption"), ("电价曲线", "electricity prices"),
        ("充电站状态", "charging station status"), ("电网检修", "grid maintenance"), ("需求响应", "demand response"),
        ("热力管网", "district heating"), ("氢能加注", "hydrogen refuelling"), ("绿电交易", "green power trades"),
        ("居民用电", "household power use"), ("电动公交能耗", "electric bus energy"),
    ]),
    "healthcare": ("医疗", "healthcare", [
        ("门诊统计", "outpatient statistics"), ("急诊就诊量", "emergency visits"), ("床位使用率", "bed occupancy"),
        ("疫苗接种", "vaccination coverage"), ("慢病患病率", "chronic disease prevalence"), ("药品销售", "pharmacy sales"),
        ("急救响应", "ambulance response"), ("检验参考区间", "lab reference ranges"), ("影像报告", "imaging reports"),
        ("糖尿病随访", "diabetes follow up"), ("传染病监测", "infectious disease surveillance"), ("住院费用", "inpatient costs"),
        ("体检指标", "health checkup results"), ("医保结算", "insurance settlements"), ("妇幼保健", "maternal health"),
        ("心血管事件", "cardiovascular events"), ("肿瘤登记", "cancer registry"), ("家庭医生签约", "family doctor contracts"),
        ("医院排队时长", "hospital waiting times"), ("药品不良反应", "adverse drug reactions"),
    ]),
    "enterprise_credit": ("企业信用", "enterprise credit", [
        ("信用评分", "credit scores"), ("司法涉诉", "litigation records"), ("工商变更", "registration changes"),
        ("纳税信用", "tax credit ratings"), ("付款行为", "payment behaviour"), ("经营异常", "business anomalies"),
        ("招投标记录", "tender awards"), ("信用保险出险", "credit insurance claims"), ("股权穿透", "ownership graphs"),
        ("动产抵押", "chattel mortgages"), ("行政处罚", "administrative penalties"), ("知识产权", "intellectual property"),
        ("企业年报", "annual reports"), ("失信被执行", "defaulted judgements"), ("供应链关系", "supply chain links"),
        ("海关信用", "customs credit"), ("社保缴纳", "social insurance payments"), ("融资事件", "financing events"),
        ("票据逾期", "bill defaults"), ("企业舆情", "company news sentiment"),
    ]),
}

PURPOSES_BY_CATEGORY = {
    "transport": ("urban_planning", "research", "navigation", "public_service", "product_development", "operations"),
    "logistics": ("operations", "statistics", "product_development", "research", "marketing"),
    "weather": ("research", "insurance", "operations", "product_development", "ai_training", "public_service"),
    "energy": ("research", "statistics", "operations", "urban_planning", "ai_training"),
    "healthcare": ("research", "public_service", "statistics", "insurance"),
    "enterprise_credit": ("risk_control", "credit_assessment", "insurance", "marketing"),
}
assert all(set(p) <= set(PURPOSES) for p in PURPOSES_BY_CATEGORY.values())

TITLE_PATTERNS = [
    "{city}{noun}（{year}）",
    "{city_en} {noun_en} {city}{noun}",
    "{year}年{city}{noun}统计",
    "{noun_en} of {city_en}, {year}",
    "{city}{noun}月度数据集",
    "{city}{district}{noun} {noun_en}",
    "{city}{noun}与{noun2}",
]
SUMMARY_PATTERNS = [
    "{city}范围内的{noun}，按日更新，{grain}。",
    "{noun_en} for {city_en}, updated {freq_en}; {grain_en}.",
    "覆盖{city}及周边的{cat}{noun}数据，{grain}，适合{use}。",
    "{year} 年以来的{noun}历史归档，{grain}。",
]
SENTENCES = [
    "数据由{source}采集，经质量控制与脱敏处理后发布。",
    "字段包括时间、{grain_field}、{noun}与统计口径说明。",
    "适合{use}、{use2}等场景。",
    "历史数据自 {year} 年起，按{freq}更新。",
    "The data set covers {city_en} and nearby districts, with {noun_en} at {grain_en}.",
    "Typical uses are {use_en} and {use2_en}.",
    "与{noun2}数据联合使用，可用于{use}。",
    "{cat}领域的基础数据，已在{count}个项目中使用。",
    "不含个人信息；最小统计单元少于 10 的格子已抑制。",
    "Delivered as {fmt} files, one per day, with a data dictionary in Chinese and English.",
]
GRAINS = [("按网格与小时聚合", "aggregated by grid cell and hour"), ("按区县与日聚合", "aggregated by district and day"),
          ("按站点与 15 分钟聚合", "aggregated by station and 15 minutes"), ("逐条记录已去标识化", "de-identified records"),
          ("按街道与周统计", "weekly by sub-district")]
GRAIN_FIELDS = ["网格编号", "区县", "站点编号", "街道", "经纬度"]
FREQS = [("每日", "daily"), ("每周", "weekly"), ("每月", "monthly"), ("每小时", "hourly")]
USES = [("城市规划", "urban planning"), ("风险定价", "risk pricing"), ("模型训练", "model training"),
        ("学术研究", "academic research"), ("运营调度", "operations scheduling"), ("选址分析", "site selection"),
        ("应急管理", "emergency management"), ("产品研发", "product development")]
SOURCES = ["自有业务系统", "物联网传感器", "合作机构报送", "公开信息加工", "自建观测网络", "平台订单系统"]
FORMATS = ["csv", "jsonl", "parquet", "GeoJSON", "GTFS"]
GRADES = ["general"] * 14 + ["important"] * 5 + ["core"]


def _text(rng: random.Random, category: str) -> dict[str, Any]:
    """Title, summary, description and tags of one made-up listing of ``category``."""
    cat_cn, cat_en, nouns = CATEGORIES[category]
    city, city_en = rng.choice(CITIES)
    district = rng.choice(CITIES[30:])[0]
    noun, noun_en = rng.choice(nouns)
    noun2 = rng.choice(nouns)[0]
    grain, grain_en = rng.choice(GRAINS)
    freq, freq_en = rng.choice(FREQS)
    (use, use_en), (use2, use2_en) = rng.sample(USES, 2)
    ctx = {"city": city, "city_en": city_en, "district": district, "noun": noun, "noun_en": noun_en,
           "noun2": noun2, "year": str(rng.randint(2015, 2026)), "grain": grain, "grain_en": grain_en,
           "grain_field": rng.choice(GRAIN_FIELDS), "freq": freq, "freq_en": freq_en, "use": use, "use_en": use_en,
           "use2": use2, "use2_en": use2_en, "source": rng.choice(SOURCES), "fmt": rng.choice(FORMATS),
           "cat": cat_cn, "count": str(rng.randint(3, 300))}
    title = rng.choice(TITLE_PATTERNS).format(**ctx)[:200]
    summary = rng.choice(SUMMARY_PATTERNS).format(**ctx)[:500]
    description = "".join(p.format(**ctx) for p in rng.sample(SENTENCES, rng.randint(3, 5)))
    tags = [cat_cn, noun, noun_en.split()[-1]]
    return {"title": title, "summary": summary, "description": description, "tags": tags, "fmt": ctx["fmt"]}


def _plans(rng: random.Random, private_buyers: list[str]) -> list[dict[str, Any]]:
    kinds = rng.choice([["one_time"], ["subscription"], ["free"], ["one_time", "subscription"],
                        ["one_time", "subscription"], ["one_time"], ["subscription", "free"]])
    plans = []
    for model in kinds:
        if model == "free":
            plans.append({"id": new_id("pln"), "model": "free", "price": {"amount": 0, "currency": "CNY"}})
        elif model == "one_time":
            plans.append({"id": new_id("pln"), "model": "one_time",
                          "price": {"amount": rng.randint(5, 1000) * 10000, "currency": "CNY"}})
        else:
            plans.append({"id": new_id("pln"), "model": "subscription",
                          "price": {"amount": rng.randint(2, 200) * 5000, "currency": "CNY"},
                          "period_days": rng.choice([30, 90, 365])})
    if private_buyers and rng.random() < 0.05:  # a private plan for a named buyer, 80 % of the first price
        first = plans[0]
        amount = first["price"]["amount"] * 8 // 10 or 100
        plans.append({"id": new_id("pln"), "model": "one_time", "price": {"amount": amount, "currency": "CNY"},
                      "private_to": [rng.choice(private_buyers)]})
    return plans


async def _insert(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        await session.execute(insert(table), rows[i:i + BATCH])


NAMED = 10  # listings whose private plans name the buyer ``named``, at every size


def _name(plans: list[dict[str, Any]], k: int, named: str | None) -> list[dict[str, Any]]:
    """Listing ``k``'s plans as they name the buyer ``named``: of the first ``2 * NAMED``
    listings, one in two adds a private plan for it (still public), the other has only
    that plan (so only that buyer and its holder find it). As many at every size: a
    buyer's private deals do not grow with the market. Not drawn from the generator, so
    every other value is the same with or without ``named``."""
    if named is None or k >= 2 * NAMED:
        return plans
    private = {"id": new_id("pln"), "model": "one_time", "price": {"amount": 100_000, "currency": "CNY"},
               "private_to": [named]}
    return [*plans, private] if k % 2 else [private]


async def seed(url: str, listings: int, providers: int = 300, seed: int = 20261201,
               progress: Callable[[str], None] = print, named: str | None = None) -> dict[str, Any]:
    """Write ``providers`` verified providers and ``listings`` registered assets with one
    active listing each into the database at ``url`` (already migrated). Returns counts.
    ``named``: a buyer whom private plans of ``2 * NAMED`` listings name (``_name``)."""
    rng = random.Random(seed)
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    now = utcnow()
    dialect = engine.dialect.name
    try:
        # -- providers -----------------------------------------------------------------
        accounts = []
        usccs: set[str] = set()
        while len(usccs) < providers:
            usccs.add(trial_uscc(rng.choice(["440300", "440100", "441900", "440400", "310000", "110000"])))
        for i, code in enumerate(sorted(usccs)):
            city = CITIES[i % len(CITIES)][0]
            category = list(CATEGORIES)[i % len(CATEGORIES)]
            accounts.append({
                "id": new_id("acct"), "name": f"{city}{CATEGORIES[category][0]}数据有限公司 No.{i + 1}",
                "kind": "enterprise", "roles": "buyer,provider", "uscc": code, "jurisdiction": "CN",
                "status": "verified", "version": 1, "suspended": False, "verified_at": now,
                "verified_by": None, "created_at": now,
            })
        provider_ids = [a["id"] for a in accounts]
        async with maker() as session:
            await _insert(session, Account.__table__, accounts)
            await session.commit()
        progress(f"  {providers} providers")

        # -- assets, revisions, listings, terms, documents, in chunks ------------------------
        categories = list(CATEGORIES)
        year = now.year
        chunk = 20000
        doc_id = (await _scalar(maker, select(func.coalesce(func.max(ListingDoc.doc_id), 0))))
        reg_base = await _scalar(maker, select(func.count()).select_from(Asset))
        wrapped = os.urandom(60)
        made = 0
        while made < listings:
            n = min(chunk, listings - made)
            assets, revisions, rows, terms, docs, texts = [], [], [], [], [], []
            for j in range(n):
                k = made + j
                category = categories[rng.randrange(len(categories))]
                provider = provider_ids[rng.randrange(len(provider_ids))]
                t = _text(rng, category)
                sha = f"{rng.getrandbits(256):064x}"
                asset = {
                    "id": new_id("ast"), "provider_id": provider, "title": t["title"],
                    "description": t["description"], "category": category,
                    "tags": json.dumps(t["tags"], ensure_ascii=False), "grade": rng.choice(GRADES),
                    "personal_info": rng.choice(["none", "none", "anonymized", "deidentified"]), "legal_basis": None,
                    "export_allowed": rng.random() < 0.3, "source": rng.choice(SOURCES), "format": t["fmt"],
                    "status": "registered", "version": 5, "frozen": False, "status_reason": None,
                    "registration_number": f"DR-{year}-{reg_base + k + 1:06d}", "wrapped_key": wrapped,
                    "content_revision": 1, "content_sha256": sha, "registered_revision": 1, "registered_sha256": sha,
                    "certificate": None, "certificate_leaf": None, "submitted_at": now, "notice_started_at": now,
                    "notice_ends_at": now, "registered_at": now, "created_at": now, "updated_at": now,
                }
                revision = {"asset_id": asset["id"], "revision": 1, "blob_id": sha, "sha256": sha,
                            "size": rng.randint(10_000, 50_000_000), "merkle_root": f"{rng.getrandbits(256):064x}",
                            "chunk_size": 1 << 20, "created_at": now,
                            "rights": json.dumps(["holding", "use", "operation"]), "claim": None,
                            "claim_key_id": None, "claim_signature": None, "claimed_at": now}
                purposes = rng.sample(PURPOSES_BY_CATEGORY[category], rng.randint(1, 3))
                licence = {"purposes": purposes, "term_days": rng.choice([90, 365, 730]),
                           "redistribution": rng.random() < 0.1, "territory": rng.choice(["domestic", "global"])}
                plans = _name(_plans(rng, [p for p in provider_ids[:50] if p != provider]), k, named)
                digest = terms_digest(plans, licence)
                listing = {
                    "id": new_id("lst"), "asset_id": asset["id"], "provider_id": provider,
                    "live_asset_id": asset["id"], "title": t["title"],
                    "summary": t["summary"] if rng.random() < 0.9 else "", "description": t["description"],
                    "tags": json.dumps(t["tags"], ensure_ascii=False), "approval_required": rng.random() < 0.15,
                    "status": "active", "version": 1, "frozen": False, "status_reason": None, "terms_version": 1,
                    "plans": json.dumps(plans, ensure_ascii=False), "licence": json.dumps(licence),
                    "terms_sha256": digest, "created_at": now, "updated_at": now,
                }
                # The market's own document builder; it reads only attributes, so plain rows do.
                values, fields = index.document(SimpleNamespace(**listing), SimpleNamespace(**asset))  # type: ignore[arg-type]
                doc_id += 1
                assets.append(asset)
                revisions.append(revision)
                rows.append(listing)
                terms.append({"listing_id": listing["id"], "version": 1, "plans": listing["plans"],
                              "licence": listing["licence"], "terms_sha256": digest, "created_at": now})
                docs.append({**values, "doc_id": doc_id, "listed": False})
                texts.append(index.text_rows(dialect, doc_id, fields))
            async with maker() as session:
                await _insert(session, Asset.__table__, assets)
                await _insert(session, AssetRevision.__table__, revisions)
                await _insert(session, Listing.__table__, rows)
                await _insert(session, ListingTerms.__table__, terms)
                await _insert(session, ListingDoc.__table__, docs)
                # The documents' text in the engine's index, with index_listing's statement.
                for i in range(0, len(texts), BATCH):
                    await session.execute(texts[0][0], [params for _, params in texts[i:i + BATCH]])
                await session.commit()
            made += n
            progress(f"  {made} listings")

        # -- listed: the market's own rule, evaluated by the database ------------------------
        async with maker() as session:
            await index.refresh_listed(session, Listing.status == "active")
            await session.commit()
        if dialect == "postgresql":
            async with engine.connect() as conn:
                await conn.execute(text("SELECT setval(pg_get_serial_sequence('listing_docs', 'doc_id'), "
                                        "(SELECT max(doc_id) FROM listing_docs))"))
                await conn.commit()
        listed = await _scalar(maker, select(func.count()).select_from(ListingDoc).where(ListingDoc.listed))
        if listed < listings:
            raise RuntimeError(f"only {listed} of {listings} seeded listings are listed")
        return {"providers": providers, "listings": listings, "listed": listed}
    finally:
        await engine.dispose()


async def analyze(url: str) -> float:
    """PostgreSQL: ``VACUUM ANALYZE`` (what autovacuum does shortly after a bulk load: the
    ``tsv`` updates leave a dead version of every document). SQLite: ``ANALYZE`` as
    ``market search reindex`` ends (``index.analyze``). Seconds taken."""
    engine = db.make_engine(url)
    try:
        started = time.perf_counter()
        if engine.dialect.name == "sqlite":
            async with db.make_sessionmaker(engine)() as session:
                await index.analyze(session)
                await session.commit()
            return time.perf_counter() - started
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def _scalar(maker: Any, query: Any) -> Any:
    async with maker() as session:
        return (await session.execute(query)).scalar_one()

