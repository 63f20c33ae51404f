"""How the dashboard writes money, moments and durations (``market.oversight.dashboard``'s
Jinja filters ``money`` and ``when``).

Money is stored and served in minor units (fen); a page shows it in yuan with two
decimals and the currency, ``15,000.00 CNY``, by integer arithmetic only (a float would
round a large amount). A moment is stored and served in UTC; a page shows it in the
regulator's zone (``MARKET_TIMEZONE``) with the offset, ``2026-03-01 14:05:09 UTC+08:00``,
inside a ``<time>`` whose ``datetime`` keeps the UTC value.
"""

import re
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup, escape

from market.core.money import exponent, human

__all__ = ["amount", "duration", "money", "money_filter", "moment", "moment_html"]

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": ("秒", "s"), "s": ("秒", "s"), "m": ("分钟", "min"), "h": ("小时", "h"), "d": ("天", "d")}


def money(minor: int, currency: str) -> str:
    """Minor units as a decimal amount: ``1500000, "CNY"`` → ``15,000.00 CNY`` (the currency's own
    number of decimals: ``market.core.money.human``)."""
    sign = "-" if minor < 0 else ""
    return sign + human(abs(minor), currency, grouped=True)


def amount(value: Any, currency: str) -> str:
    """An amount in minor units as a page shows it; a fraction of a fen (a median of two
    prices is one) keeps its digits, exactly (``Decimal`` of the JSON number's text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return money(value, currency)
    try:
        exact = Decimal(str(value))
    except InvalidOperation:
        return f"{value} {currency}"
    if exact == exact.to_integral_value():
        return money(int(exact), currency)
    return f"{exact.scaleb(-exponent(currency)):,f} {currency}"


def money_filter(value: Any, currency: str | None = None) -> str:
    """``{{ order.price | money }}`` (a Money ``{"amount", "currency"}``) or
    ``{{ minor | money("CNY") }}``; ``None`` is a dash."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        return amount(value.get("amount"), str(value.get("currency", "")))
    return amount(value, currency or "")


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _offset(at: datetime) -> str:
    text = at.strftime("%z")  # +0800
    return f"UTC{text[:3]}:{text[3:5]}" if text else "UTC"


def moment(value: Any, zone: tzinfo) -> str:
    """A moment in ``zone`` with its offset, to the second; ``—`` for none, and text that
    is not a time as it is."""
    at = _parse(value)
    if at is None:
        return "—" if value in (None, "") else str(value)
    local = at.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {_offset(local)}"


def moment_html(value: Any, zone: tzinfo) -> Markup:
    """``moment`` in a ``<time>`` element whose ``datetime`` is the UTC moment."""
    at = _parse(value)
    if at is None:
        return escape(moment(value, zone))
    utc = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    day_time, offset = moment(at, zone).rsplit(" ", 1)
    return Markup('<time datetime="{}" title="{} UTC"><span class="at">{}</span> <span class="tz">{}</span></time>').format(
        utc, utc[:19].replace("T", " "), day_time, offset)


def duration(text: Any) -> tuple[str, str]:
    """A ``MARKET_*`` duration (``1h``, ``30d``) in Chinese and in English."""
    found = _DURATION.match(str(text).strip())
    if not found:
        return str(text), str(text)
    zh, en = _UNITS[found.group(2)]
    return f"{found.group(1)} {zh}", f"{found.group(1)}{en}"
