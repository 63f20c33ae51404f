"""An alert's evidence as a regulator reads it (``market.oversight.dashboard``): a sentence
in Chinese and in English saying what the rule saw, and the evidence's fields as a
table, with names for ids (``dashboard_names``), money in yuan and times in the
regulator's zone. The evidence's shape per rule is ``market.oversight.alerts``'s
(docs/alerts.md); evidence of a shape not known here (an older or newer rule) is shown
field by field with no sentence, never dropped.
"""

import json
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any

from market.oversight.dashboard_format import amount, duration, moment
from market.oversight.dashboard_names import Names, Ref, kind_of

__all__ = ["RULE_NAMES", "Cell", "Evidence", "Row", "describe"]

RULE_NAMES = {
    "self_dealing": "关联交易 Related-party trade",
    "wash_trade": "对倒交易 Wash trade",
    "price_outlier": "价格异常 Price outlier",
    "order_burst": "频繁下单 Order burst",
    "refused_attempt": "被拒绝的尝试 Refused attempt",
    "identifiable_pi_sale": "可识别个人信息交易 Identifiable personal information sold",
}
RELATIONS = {
    "provider_controls_buyer": ("供方控制买方", "the provider controls the buyer"),
    "buyer_controls_provider": ("买方控制供方", "the buyer controls the provider"),
    "same_controller": ("双方受同一主体控制", "both are controlled by the same entity"),
}
REFUSALS = {
    "export-not-allowed": ("不允许出境", "export not allowed"),
    "core-data-refused": ("核心数据", "core data"),
    "self-dealing": ("自我交易", "self-dealing"),
}


@dataclass(frozen=True)
class Cell:
    """A value of the table: ``ref`` (a Ref), ``refs`` (a list of them), ``time`` (a
    moment, formatted by the page) or ``text``."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Row:
    label: str
    cell: Cell


@dataclass(frozen=True)
class Evidence:
    zh: str  # "" when the shape is not one this module knows
    en: str
    rows: list[Row]


def _text(value: Any) -> Cell:
    if value is None or value == "":
        return Cell("text", "—")
    if isinstance(value, str):
        return Cell("text", value)
    return Cell("text", json.dumps(value, ensure_ascii=False, sort_keys=True))


class _Say:
    """What the sentences and rows of one alert need: names, the zone, the evidence."""

    def __init__(self, evidence: dict[str, Any], names: Names, zone: tzinfo) -> None:
        self.e, self.names, self.zone = evidence, names, zone

    def ref(self, key: str, side: str | None = None) -> Cell:
        return Cell("ref", self.names(self.e.get(key), side))

    def name(self, value: str | None) -> str:
        return self.names.label(value)

    def when(self, value: Any) -> str:
        return moment(value, self.zone)

    def order(self, value: str | None) -> Ref | None:
        return self.names(value)


def _self_dealing(s: _Say) -> Evidence:
    e = s.e
    zh_rel, en_rel = RELATIONS.get(e["relation"], (e["relation"], e["relation"]))
    buyer, provider, at = s.name(e["buyer"]), s.name(e["provider"]), s.when(e["settled_at"])
    return Evidence(
        f"买方 {buyer} 与供方 {provider} 为关联方（{zh_rel}），其订单于 {at} 结算",
        f"Buyer {buyer} and provider {provider} are related parties ({en_rel}); their order settled at {at}",
        [Row("关系 Relation", Cell("text", f"{zh_rel} {en_rel}")),
         Row("买方 Buyer", s.ref("buyer", "buyer")), Row("供方 Provider", s.ref("provider", "provider")),
         Row("买方统一社会信用代码 Buyer's USCC", _text(e.get("buyer_uscc"))),
         Row("供方统一社会信用代码 Provider's USCC", _text(e.get("provider_uscc"))),
         Row("买方的控制方 Buyer's controller (USCC)", _text(e.get("buyer_controller_uscc"))),
         Row("供方的控制方 Provider's controller (USCC)", _text(e.get("provider_controller_uscc"))),
         Row("订单 Order", s.ref("order")), Row("结算时间 Settled", Cell("time", e["settled_at"]))])


def _wash_trade(s: _Say) -> Evidence:
    e = s.e
    first, second = e["first"], e["second"]
    a, b = s.name(first["buyer"]), s.name(first["provider"])
    zh_w, en_w = duration(e["window"])
    rows = [Row("时间窗口 Window", Cell("text", f"{zh_w} {en_w}"))]
    for zh, en, leg in (("第一笔", "First", first), ("第二笔", "Second", second)):
        rows += [Row(f"{zh}订单 {en} order", Cell("ref", s.names(leg["order"]))),
                 Row(f"{zh}买方 {en} buyer", Cell("ref", s.names(leg["buyer"], "buyer"))),
                 Row(f"{zh}供方 {en} provider", Cell("ref", s.names(leg["provider"], "provider"))),
                 Row(f"{zh}结算 {en} settled", Cell("time", leg["settled_at"]))]
    return Evidence(
        f"{a} 向 {b} 购买，{b} 又向 {a} 购买，两次结算相隔不超过 {zh_w}（{s.when(first['settled_at'])}、"
        f"{s.when(second['settled_at'])}）",
        f"{a} bought from {b} and {b} bought from {a}, the two settlements within {en_w} of each other "
        f"({s.when(first['settled_at'])}, {s.when(second['settled_at'])})",
        rows)


def _ratio(price: int, median: Any) -> str:
    """price ÷ median to one decimal, exactly (no float)."""
    exact = Fraction(Decimal(str(median)))
    if exact <= 0:
        return "—"
    tenths = round(Fraction(price) / exact * 10)
    return f"{tenths // 10}.{tenths % 10}"


def _price_outlier(s: _Say) -> Evidence:
    e = s.e
    cur = e["currency"]
    price, median, factor, n = amount(e["price"], cur), amount(e["median"], cur), e["factor"], e["sample"]
    order = s.order(e["order"])
    title = order.label if order else e["order"]
    times = _ratio(int(e["price"]), e["median"])
    if e["direction"] == "above":
        zh = f"订单《{title}》的价格 {price} 高于 {e['category']} 类此前 {n} 笔成交中位数 {median} 的 {factor} 倍（为中位数的 {times} 倍）"
        en = (f'Order "{title}" at {price} is above {factor}× the median {median} of {n} earlier trades in '
              f"{e['category']} ({times}× the median)")
    else:
        zh = f"订单《{title}》的价格 {price} 低于 {e['category']} 类此前 {n} 笔成交中位数 {median} 的 1/{factor}（为中位数的 {times} 倍）"
        en = (f'Order "{title}" at {price} is below 1/{factor} of the median {median} of {n} earlier trades in '
              f"{e['category']} ({times}× the median)")
    return Evidence(zh, en, [
        Row("订单 Order", Cell("ref", order)), Row("价格 Price", Cell("text", price)),
        Row("类别中位数 Category median", Cell("text", median)), Row("样本笔数 Sample", Cell("text", str(n))),
        Row("倍数阈值 Factor", Cell("text", f"{factor}×")),
        Row("方向 Direction", Cell("text", "高于 above" if e["direction"] == "above" else "低于 below")),
        Row("类别 Category", Cell("text", e["category"]))])


def _order_burst(s: _Say) -> Evidence:
    e = s.e
    orders, limit = list(e["orders"]), int(e["more_than"])
    zh_w, en_w = duration(e["window"])
    buyer = s.name(e["buyer"])
    # The rule lists at most one order more than the threshold: that many means "at least".
    zh_n, en_n = (f"至少 {len(orders)}", f"at least {len(orders)}") if len(orders) > limit else \
        (f" {len(orders)}", str(len(orders)))
    return Evidence(
        f"买方 {buyer} 在 {zh_w}内下单{zh_n} 笔（阈值 {limit}），截至 {s.when(e['until'])}",
        f"Buyer {buyer} placed {en_n} orders within {en_w} (threshold {limit}), up to {s.when(e['until'])}",
        [Row("买方 Buyer", s.ref("buyer", "buyer")), Row("时间窗口 Window", Cell("text", f"{zh_w} {en_w}")),
         Row("阈值 Threshold", Cell("text", f"> {limit}")), Row("截至 Up to", Cell("time", e["until"])),
         Row(f"订单 Orders ({len(orders)})", Cell("refs", [s.names(o) for o in orders]))])


def _refused_attempt(s: _Say) -> Evidence:
    e = s.e
    zh_k, en_k = REFUSALS.get(e["kind"], (e["kind"], e["kind"]))
    n = len(e.get("refusals") or [])
    account, first = s.name(e["account"]), s.when(e["first_at"])
    zh_what = f"，资产《{s.name(e['asset'])}》" if e.get("asset") else ""
    en_what = f" for asset {s.name(e['asset'])}" if e.get("asset") else ""
    return Evidence(
        f"账户 {account} 的 {n} 次尝试被拒绝（{zh_k}）{zh_what}，首次于 {first}",
        f"Account {account} was refused {n} time{'s' if n != 1 else ''} ({en_k}){en_what}; first at {first}",
        [Row("账户 Account", s.ref("account")), Row("类型 Kind", Cell("text", f"{zh_k} {en_k}")),
         Row("资产 Asset", s.ref("asset")), Row("挂牌 Listing", s.ref("listing")),
         Row("次数 Attempts", Cell("text", str(n))), Row("首次 First at", Cell("time", e["first_at"]))])


def _identifiable_pi_sale(s: _Say) -> Evidence:
    e = s.e
    order = s.order(e["order"])
    buyer = order.buyer.label if order and order.buyer else "—"
    provider = order.provider.label if order and order.provider else "—"
    asset, at, purpose = s.name(e["asset"]), s.when(e["settled_at"]), e.get("purpose") or "—"
    return Evidence(
        f"买方 {buyer} 向供方 {provider} 购买了含可识别个人信息的资产《{asset}》（用途：{purpose}），于 {at} 结算",
        f"Buyer {buyer} bought {asset}, which holds identifiable personal information, from provider {provider} "
        f"(purpose: {purpose}); settled at {at}",
        [Row("订单 Order", Cell("ref", order)), Row("资产 Asset", s.ref("asset")),
         Row("买方 Buyer", Cell("ref", order.buyer if order else None)),
         Row("供方 Provider", Cell("ref", order.provider if order else None)),
         Row("个人信息 Personal information", _text(e.get("personal_info"))),
         Row("用途 Purpose", _text(e.get("purpose"))), Row("结算时间 Settled", Cell("time", e["settled_at"]))])


_RULES = {"self_dealing": _self_dealing, "wash_trade": _wash_trade, "price_outlier": _price_outlier,
          "order_burst": _order_burst, "refused_attempt": _refused_attempt,
          "identifiable_pi_sale": _identifiable_pi_sale}


def _fields(evidence: dict[str, Any], names: Names) -> list[Row]:
    rows = []
    for key, value in evidence.items():
        if isinstance(value, str) and kind_of(value):
            rows.append(Row(key, Cell("ref", names(value))))
        elif isinstance(value, list) and value and all(isinstance(v, str) and kind_of(v) for v in value):
            rows.append(Row(key, Cell("refs", [names(v) for v in value])))
        elif isinstance(value, str) and key.endswith("_at"):
            rows.append(Row(key, Cell("time", value)))
        else:
            rows.append(Row(key, _text(value)))
    return rows


def describe(rule: str, evidence: Any, names: Names, zone: tzinfo) -> Evidence:
    """The sentence and the table of one alert's evidence."""
    if not isinstance(evidence, dict):
        return Evidence("", "", [Row("evidence", _text(evidence))])
    known = _RULES.get(rule)
    if known is not None:
        try:
            return known(_Say(evidence, names, zone))
        except (KeyError, TypeError, ValueError, ArithmeticError):
            pass  # a shape this page does not know: every field, no sentence
    return Evidence("", "", _fields(evidence, names))
