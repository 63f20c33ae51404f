"""行政区划 codes (GB/T 2260) and their names, shipped with the market (``regions.csv``,
read once; source and licences in docs/registry.md).

The market meets these codes in unified social credit codes: characters 3–8 of a
USCC are the code of the registering authority's division *when the code was issued*,
and divisions are merged and renamed every year. So besides every division in force
the file keeps the county-level and prefecture-level codes abolished since 2015 (the
USCC's first year), with the name they last had (``current`` false): an old
company's region keeps its name.

``province`` and ``city`` name the enclosing province-level and prefecture-level
divisions: a province's ``city`` is null; a prefecture-level code is its own city; a
district of a municipality (北京、天津、上海、重庆) has the municipality as its city; a
county-level city governed by its province directly (省直辖, e.g. 429004 仙桃市) has no
city.
"""

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

Level = Literal["province", "prefecture", "county"]
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})


@dataclass(frozen=True)
class Region:
    code: str
    name_zh: str
    province: str | None
    city: str | None
    level: Level
    current: bool


def is_code(value: str) -> bool:
    """Six ASCII digits: the form of a code, known or not."""
    return len(value) == 6 and value.isascii() and value.isdigit()


def _level(code: str) -> Level:
    if code.endswith("0000"):
        return "province"
    return "prefecture" if code.endswith("00") else "county"


@cache
def _names() -> dict[str, tuple[str, bool]]:
    """code -> (name, in force), read from the package's data file once per process."""
    text = resources.files("market.registry").joinpath("regions.csv").read_text(encoding="utf-8")
    return {row["code"]: (row["name_zh"], not row["last_seen"]) for row in csv.DictReader(io.StringIO(text))}


def _name_of(code: str) -> str | None:
    found = _names().get(code)
    return found[0] if found else None


def lookup(code: str) -> Region | None:
    """The division ``code`` names; None for an unknown or malformed code."""
    found = _names().get(code) if is_code(code) else None
    if found is None:
        return None
    name, current = found
    level = _level(code)
    province = name if level == "province" else _name_of(code[:2] + "0000")
    if level == "province":
        city = None
    elif level == "prefecture":
        city = name
    else:
        city = _name_of(code[:4] + "00") or (province if code[:2] in MUNICIPALITIES else None)
    return Region(code=code, name_zh=name, province=province, city=city, level=level, current=current)


def name(code: str) -> str | None:
    """The division's name (``深圳市`` for 440300); None for an unknown or malformed code."""
    return _name_of(code) if is_code(code) else None


def count() -> int:
    return len(_names())
