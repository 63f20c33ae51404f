"""Who trades in the demo's history, besides the catalogue of ``market.demo.data``: more
buyers, a provider that also buys (the other half of a wash-trade pair), a buyer abroad
(the export gate), and what each kind of buyer is after.

Every party is fictional; codes are ``demo_uscc`` codes (organisation code ``DM…``). The
categories used here are among the market's closed list of category ids.
"""

from dataclasses import dataclass

from market.demo.data import AssetSpec, PartySpec


@dataclass(frozen=True)
class ForeignParty:
    """A party registered abroad: no unified social credit code, a jurisdiction of its own."""

    key: str
    name: str
    kind: str
    roles: tuple[str, ...]
    jurisdiction: str
    source: str = ""
    uscc: None = None


P = PartySpec
EXTRA_PARTIES: tuple[PartySpec | ForeignParty, ...] = (
    P("qianhai", "前海数衡科技有限公司 Qianhai Shuheng Data", "enterprise", ("buyer", "provider"), "91", "440305", 109,
      "公司采购的公开工商数据与跨境物流合作伙伴报送的运单汇总"),
    P("pingyuan", "平远人寿保险股份有限公司", "enterprise", ("buyer",), "91", "440304", 207),
    P("pengwan", "鹏湾综合能源服务有限公司 Pengwan Energy Services", "enterprise", ("buyer",), "91", "440307", 208),
    P("baywardhosp", "南山湾区医院（演示）", "institution", ("buyer",), "12", "440305", 209),
    P("weilian", "微链普惠金融科技有限公司 Weilian Fintech", "enterprise", ("buyer",), "91", "440304", 210),
    P("publichealth", "鹏湾公共卫生研究所", "institution", ("buyer",), "12", "440300", 211),
    P("haiwanmart", "海湾连锁超市有限公司 Haiwan Mart", "enterprise", ("buyer",), "91", "440306", 212),
    P("lvchi", "绿驰新能源车队有限公司", "enterprise", ("buyer",), "91", "441900", 213),
    P("shennan", "深南产业研究咨询有限公司 Shennan Research", "enterprise", ("buyer",), "91", "440303", 214),
    ForeignParty("pacific", "Pacific Rim Climate Institute 环太平洋气候研究所 (Singapore)", "institution", ("buyer",),
                 "SG"),
)

A = AssetSpec
EXTRA_ASSETS = (
    A("qianhai", "logistics", "Cross-border freight rate index 跨境货运运价指数", "华南出口主要航线与跨境陆运的周度运价指数。",
      "由合作货代报送的成交运价聚合，按航线、箱型与周发布，可用于物流成本管理与贸易研究。", ("运价", "跨境", "航线"),
      price=9000),
    A("qianhai", "enterprise_credit", "Supplier risk watchlist 供应商风险名单", "供应商经营异常、涉诉与股权变动的周度预警名单。",
      "综合公开工商与司法信息，按风险信号排序，供采购与供应链金融的准入与贷后管理使用。", ("供应商", "预警"),
      monthly=2500),
    # Priced far above the category: bought once in the history, so ``price_outlier`` has a case.
    A("qianhai", "enterprise_credit", "National equity-penetration graph (full) 全国企业股权穿透图谱（全量）",
      "全国存续企业的股权穿透与实际控制人图谱，全量含历史版本。",
      "由公开工商登记信息加工，含多层股权路径、持股比例与变更历史，按季度全量交付。", ("股权", "实际控制人", "图谱"),
      price=880000),
)


@dataclass(frozen=True)
class Appetite:
    """What a buyer buys: how often (``weight``), which categories (weights), and the
    purposes it states when the licence allows them."""

    weight: int
    categories: dict[str, int]
    purposes: tuple[str, ...] = ()


APPETITES = {
    "shunjie": Appetite(4, {"logistics": 3, "transport": 2, "weather": 1}, ("operations", "product_development")),
    "harbor": Appetite(6, {"weather": 3, "enterprise_credit": 2, "transport": 1, "healthcare": 1}, ("insurance",)),
    "sghkbank": Appetite(6, {"enterprise_credit": 4, "energy": 1}, ("risk_control", "credit_assessment")),
    "planning": Appetite(4, {"transport": 3, "energy": 2, "weather": 1, "healthcare": 1}, ("urban_planning",)),
    "navistar": Appetite(5, {"transport": 4, "energy": 1}, ("navigation", "product_development")),
    "urbanlab": Appetite(3, {"transport": 2, "energy": 1, "weather": 1, "healthcare": 1, "logistics": 1},
                         ("research",)),
    "quickride": Appetite(4, {"logistics": 3, "transport": 2, "weather": 1}, ("operations",)),
    "qianhai": Appetite(2, {"enterprise_credit": 2, "logistics": 1}, ("product_development",)),
    "pingyuan": Appetite(4, {"healthcare": 3, "weather": 1, "enterprise_credit": 1}, ("insurance", "statistics")),
    "pengwan": Appetite(3, {"energy": 4, "weather": 1}, ("operations",)),
    "baywardhosp": Appetite(2, {"healthcare": 4}, ("research", "public_service")),
    "weilian": Appetite(4, {"enterprise_credit": 4, "logistics": 1}, ("risk_control", "credit_assessment")),
    "publichealth": Appetite(2, {"healthcare": 3, "weather": 1}, ("public_service", "research")),
    "haiwanmart": Appetite(3, {"logistics": 2, "weather": 2, "transport": 1}, ("operations",)),
    "lvchi": Appetite(3, {"energy": 3, "transport": 2}, ("operations",)),
    "shennan": Appetite(2, {"transport": 1, "logistics": 1, "weather": 1, "energy": 1, "healthcare": 1,
                            "enterprise_credit": 1}, ("research", "statistics")),
    "pacific": Appetite(2, {"weather": 3, "energy": 1}, ("research",)),
}

# The cases the alert rules are for (docs/alerts.md).
WASH_PAIR = ("shunjie", "qianhai")  # each buys from the other within days: wash_trade
BURST_BUYER = "quickride"  # an integration script that ran away: order_burst
OUTLIER = ("sghkbank", "National equity-penetration graph (full) 全国企业股权穿透图谱（全量）")  # price_outlier
ABROAD = "pacific"  # tries a domestic-only asset: refused_attempt (export-not-allowed)

__all__ = ["ABROAD", "APPETITES", "BURST_BUYER", "EXTRA_ASSETS", "EXTRA_PARTIES", "OUTLIER", "WASH_PAIR", "Appetite",
           "ForeignParty"]
