"""Categories (docs/API.md "Registry", ``GET /v1/categories``): the closed, bilingual list that
an asset's ``category`` is taken from.

Why closed: as free text one subject split into several (``tourism`` beside ``旅游``),
and so did everything counted by category — the search facets, the regulator's series,
the ``price_outlier`` median. The ids are what the API stores, filters, facets and
series on; the names are for people, and for search: a listing's text carries its
category's id and both names (``market.listings.index``), so ``q=交通`` finds transport.

``canonical`` maps what an asset said before the list existed (an id, a name, a common
synonym; anything else is ``other``) to an id. Migration 0020 applied it to the stored
categories, and it is applied again wherever a document written before then is read:
contracts counted in the statistics (``market.oversight.stats``) and replayed
(``market.oversight.replay_totals``). A released mapping is never changed, only added to.
"""

import unicodedata
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

from market.core.errors import Unprocessable


@dataclass(frozen=True)
class Category:
    id: str
    name_zh: str
    name_en: str


CATEGORIES: tuple[Category, ...] = (
    Category("transport", "交通运输", "Transport"),
    Category("logistics", "物流", "Logistics"),
    Category("energy", "能源", "Energy"),
    Category("weather", "气象", "Weather"),
    Category("finance", "金融", "Finance"),
    Category("enterprise_credit", "企业征信", "Enterprise credit"),
    Category("healthcare", "医疗健康", "Healthcare"),
    Category("geospatial", "地理空间", "Geospatial"),
    Category("telecom", "通信", "Telecommunications"),
    Category("retail", "商贸零售", "Retail and commerce"),
    Category("manufacturing", "工业制造", "Manufacturing"),
    Category("agriculture", "农业", "Agriculture"),
    Category("education", "教育", "Education"),
    Category("tourism", "文化旅游", "Culture and tourism"),
    Category("environment", "生态环境", "Environment"),
    Category("urban", "城市建设", "Urban development"),
    Category("public_service", "公共服务", "Public services"),
    Category("other", "其他", "Other"),
)
IDS: tuple[str, ...] = tuple(c.id for c in CATEGORIES)
BY_ID: dict[str, Category] = {c.id: c for c in CATEGORIES}
OTHER = "other"

# Synonyms beyond each category's id and names, as an asset might have put them before
# the list was closed. Compared after ``_fold`` (NFKC, lowercase, spaces and hyphens as
# underscores).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "transport": ("transportation", "traffic", "mobility", "交通", "交通出行", "出行", "运输", "公共交通"),
    "logistics": ("freight", "shipping", "supply_chain", "快递", "货运", "供应链", "仓储物流"),
    "energy": ("power", "electricity", "电力", "能源电力"),
    "weather": ("meteorology", "meteorological", "climate", "天气", "气候", "气象服务"),
    "finance": ("financial", "banking", "insurance", "金融服务", "银行", "保险"),
    "enterprise_credit": ("credit", "business_credit", "corporate_credit", "征信", "企业信用", "信用"),
    "healthcare": ("health", "medical", "medicine", "医疗", "健康", "卫生健康", "医药", "医疗卫生"),
    "geospatial": ("geographic", "geography", "gis", "mapping", "map", "maps", "地理", "地理信息", "测绘",
                   "遥感"),
    "telecom": ("telecommunications", "telecommunication", "communications", "电信", "通讯"),
    "retail": ("commerce", "e_commerce", "ecommerce", "商贸", "零售", "电商", "电子商务", "消费"),
    "manufacturing": ("industry", "industrial", "工业", "制造", "制造业"),
    "agriculture": ("farming", "agricultural", "农林牧渔", "农业农村"),
    "education": ("教育培训",),
    "tourism": ("travel", "culture", "culture_and_tourism", "旅游", "文旅", "文化"),
    "environment": ("environmental", "ecology", "ecological", "环境", "环保", "生态"),
    "urban": ("city", "smart_city", "urban_development", "城市", "城建", "智慧城市", "城市管理", "住房城乡建设"),
    "public_service": ("public_services", "government", "政务", "公共", "政务服务"),
    "other": ("others", "misc", "其它"),
}


def _fold(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip().lower()
    return "_".join(text.replace("-", " ").split())


_LOOKUP: dict[str, str] = {}
for _c in CATEGORIES:
    for _word in (_c.id, _c.name_zh, _c.name_en, *_SYNONYMS[_c.id]):
        _LOOKUP.setdefault(_fold(_word), _c.id)


def canonical(value: str) -> str:
    """The id that ``value`` (an id, a name or a synonym of one) stands for; ``other``
    for anything not recognised."""
    return _LOOKUP.get(_fold(value), OTHER)


def is_category(value: str) -> bool:
    return value in BY_ID


def _message(value: str) -> str:
    return f"unknown category {value!r}; one of: {', '.join(IDS)} (GET /v1/categories)"


def check(value: str | None, field: str = "category") -> str | None:
    """``value`` when it is a category id (or None); else 422 ``unknown-category``
    naming the field and the ids allowed (query parameters; bodies use ``CategoryId``)."""
    if value is None or is_category(value):
        return value
    message = _message(value)
    raise Unprocessable(message, kind="unknown-category",
                        extra={"errors": [{"field": field, "message": message}], "allowed": list(IDS)})


def _validate(value: str) -> str:
    if not is_category(value):
        raise ValueError(_message(value))
    return value


# A request body's category: a validation error (422 naming the field) unless it is an
# id. The OpenAPI document lists the ids (market.web.openapi.PROPERTY_RULES).
CategoryId = Annotated[str, AfterValidator(_validate)]


def search_text(value: str) -> str:
    """What search indexes for a category: its id and both names (the value itself when
    it is not an id)."""
    category = BY_ID.get(value)
    if category is None:
        return value
    return f"{category.id.replace('_', ' ')} {category.name_zh} {category.name_en}"


def listing() -> list[dict[str, str]]:
    """The items of ``GET /v1/categories``, in the list's order."""
    return [{"id": c.id, "name_zh": c.name_zh, "name_en": c.name_en} for c in CATEGORIES]
