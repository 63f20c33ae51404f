"""Replay, step 3 (``market.oversight.replay``): the overview recomputed from the verified
trade documents alone, and compared, value by value, with the one the market serves.

Settled orders come from the ``trade.settled`` contracts (price, currency, buyer,
provider, asset category and grade, ``settled_at``), refunds from the ``trade.refunded``
documents, counted on the day of their signed entry and under the dimensions of the
contract they undo. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from market.registry.categories import canonical

__all__ = ["DIMENSIONS", "Entry", "Finding", "MAX_PERIOD_DAYS", "ReplayError", "compare", "period_of", "recompute"]

MEASURES = ("orders", "value", "refunds", "refunded_value")
PARTIES = ("buyers", "providers")
DIMENSIONS = ("day", "category", "grade", "provider", "region")
MAX_PERIOD_DAYS = 3700  # the overview's longest period


class ReplayError(Exception):
    """The replay could not finish (nothing was concluded about the market)."""


@dataclass
class Finding:
    kind: str  # log | entry | missing | extra | altered | total | enrollment | act
    message: str
    index: int | None = None
    type: str | None = None
    subject: str | None = None
    overview: int | None = None
    documents: int | None = None


@dataclass(frozen=True)
class Entry:
    """A verified entry the replay keeps: its type, subject, time and document digest."""

    type: str
    subject: str
    time: str
    digest: str | None  # None: the entry is not shaped as a confidential entry
    salted: tuple[str, ...] = ()  # salted details named in the entry's data


def _day(rfc3339: str) -> str:
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _region(uscc: Any) -> str:
    return uscc[2:8] if isinstance(uscc, str) and len(uscc) == 18 else ""


def recompute(documents: dict[int, dict[str, Any]], entries: dict[int, Entry],
              since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The overview's totals and series (per currency) from verified documents alone, for
    ``since`` <= day < ``until`` (UTC dates, either open): the shape of
    ``market.oversight.stats.overview`` without registrations, as plain dicts."""
    totals: dict[str, dict[str, int]] = {}
    series: dict[str, dict[str, dict[str, dict[str, int]]]] = {d: {} for d in DIMENSIONS}
    parties: dict[str, dict[str, set[str]]] = {}
    contracts: dict[str, dict[str, Any]] = {}

    def within(day: str) -> bool:
        return (since is None or day >= since) and (until is None or day < until)

    def add(currency: str, keys: dict[str, str], **amounts: int) -> None:
        total = totals.setdefault(currency, {**{m: 0 for m in MEASURES}, **{p: 0 for p in PARTIES}})
        for dim, key in keys.items():
            slot = series[dim].setdefault(currency, {}).setdefault(key, {m: 0 for m in MEASURES})
            for m, v in amounts.items():
                slot[m] += v
        for m, v in amounts.items():
            total[m] += v

    def dims(contract: dict[str, Any]) -> dict[str, str]:
        asset, provider = contract["asset"], contract["provider"]
        # A contract from before the closed list counts under its category's id, as the overview does.
        return {"category": canonical(str(asset["category"])), "grade": str(asset["grade"]), "provider": str(provider["id"]),
                "region": _region(provider.get("uscc"))}

    for index in sorted(documents):
        doc = documents[index]
        if doc.get("event") == "trade.settled":
            contracts[str(doc["order"])] = doc
            day = _day(doc["settled_at"])
            if not within(day):
                continue
            currency = str(doc["price"]["currency"])
            add(currency, {"day": day, **dims(doc)}, orders=1, value=int(doc["price"]["amount"]))
            who = parties.setdefault(currency, {"buyers": set(), "providers": set()})
            who["buyers"].add(str(doc["buyer"]["id"]))
            who["providers"].add(str(doc["provider"]["id"]))
    for index in sorted(documents):
        doc = documents[index]
        if doc.get("event") != "trade.refunded":
            continue
        day = _day(entries[index].time)  # the refund's moment: its signed entry
        if not within(day):
            continue
        amount = doc["amount"]
        contract = contracts.get(str(doc["order"]))
        keys = {"day": day, **(dims(contract) if contract is not None else {})}
        add(str(amount["currency"]), keys, refunds=1, refunded_value=int(amount["amount"]))
    for currency, who in parties.items():
        totals[currency]["buyers"] = len(who["buyers"])
        totals[currency]["providers"] = len(who["providers"])
    return {"totals": {"by_currency": totals},
            "series": {dim: {cur: [{"key": k, **v} for k, v in sorted(keys.items())] for cur, keys in by.items()}
                       for dim, by in series.items()}}


def _flatten(overview: dict[str, Any]) -> dict[tuple[str, ...], int]:
    """(currency, what[, dimension, key], measure) → value, for comparison; zeros left out."""
    flat: dict[tuple[str, ...], int] = {}
    for currency, total in (overview.get("totals", {}).get("by_currency") or {}).items():
        for m in (*MEASURES, *PARTIES):
            if total.get(m):
                flat[(currency, "total", m)] = int(total[m])
    for dim in DIMENSIONS:
        for currency, rows in ((overview.get("series") or {}).get(dim) or {}).items():
            for row in rows:
                for m in MEASURES:
                    if row.get(m):
                        key = (currency, dim, str(row["key"]), m)
                        flat[key] = flat.get(key, 0) + int(row[m])
    return flat


def _describe(key: tuple[str, ...]) -> str:
    if key[1] == "total":
        return f"{key[0]} {key[2]}"
    return f"{key[0]} {key[1]} {key[2] or '(none)'} {key[3]}"


def compare(served: dict[str, Any], recomputed: dict[str, Any]) -> list[Finding]:
    """A ``total`` finding for every value the overview serves that the documents do not give."""
    try:
        theirs = _flatten(served)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ReplayError("GET /v1/oversight/overview: not the shape docs/API.md gives (totals.by_currency, series)") \
            from None
    ours = _flatten(recomputed)
    findings = []
    for key in sorted(theirs.keys() | ours.keys()):
        a, b = theirs.get(key, 0), ours.get(key, 0)
        if a != b:
            findings.append(Finding("total", f"{_describe(key)}: overview {a}, documents {b} (differs by {a - b:+d})",
                                    overview=a, documents=b))
    return findings


def period_of(first_time: str | None, entries: dict[int, Entry], today: date) -> tuple[str, str]:
    """A period covering the whole log: the first entry's day to the day after the later
    of today and the last confidential entry; at most the overview's longest period."""
    days = [_day(e.time) for e in entries.values()]
    last = max([today.isoformat(), *days])
    until = date.fromisoformat(last) + timedelta(days=1)
    since = date.fromisoformat(_day(first_time)) if first_time else until - timedelta(days=1)
    since = max(since, until - timedelta(days=MAX_PERIOD_DAYS))
    return since.isoformat(), until.isoformat()


# -- the whole replay ----------------------------------------------------------------------
