"""A listing's licence as ODRL rules (docs/dsp.md "The licence in ODRL"): the one mapping
the catalog's offers, the negotiation's offers and the agreements share.

- ``permission``: action ``use``, constrained by ``purpose isAnyOf`` the purpose IRIs
  (``urn:market:purpose:<code>``), ``elapsedTime lteq`` the term as an ``xsd:duration``
  (``P365D``) and ``spatial eq`` the territory (``domestic`` or ``global``).
- ``prohibition``: action ``distribute`` when the licence does not allow redistribution;
  absent otherwise (the protocol's schemas refuse an empty rule list).
"""

import re
from typing import Any

PURPOSE_PREFIX = "urn:market:purpose:"
_DURATION = re.compile(r"^P([1-9][0-9]*)D$")


def purpose_iri(purpose: str) -> str:
    """``research`` → ``urn:market:purpose:research``."""
    return PURPOSE_PREFIX + purpose


def parse_purpose_iri(iri: Any) -> str | None:
    """The purpose code of a purpose IRI (a string, or a JSON-LD ``{"@id": …}``), or None
    for anything else. Whether the code is a purpose the market knows is the caller's
    check (``market.listings.schemas.PURPOSES``)."""
    if isinstance(iri, dict):
        iri = iri.get("@id")
    if not isinstance(iri, str) or not iri.startswith(PURPOSE_PREFIX):
        return None
    return iri[len(PURPOSE_PREFIX):] or None


def duration(days: int) -> str:
    """A term in days as an ``xsd:duration``: 365 → ``P365D``."""
    return f"P{int(days)}D"


def parse_duration(value: Any) -> int | None:
    """The days of ``P<n>D`` (a string or a typed literal ``{"@value": …}``), or None."""
    if isinstance(value, dict):
        value = value.get("@value")
    found = _DURATION.match(value) if isinstance(value, str) else None
    return int(found.group(1)) if found else None


def rules(licence: dict[str, Any], purposes: list[str]) -> dict[str, list[Any]]:
    """The ODRL rules of ``licence`` (a listing's or an order's: ``term_days``,
    ``territory``, ``redistribution``) for ``purposes`` (the licence's own, or the one an
    order accepted): ``{"permission": [...]}`` and, when redistribution is not allowed,
    ``"prohibition"``. Put them into an ``Offer`` or an ``Agreement`` as they are."""
    constraints: list[dict[str, Any]] = [
        {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": [{"@id": purpose_iri(p)} for p in purposes]},
        {"leftOperand": "elapsedTime", "operator": "lteq",
         "rightOperand": {"@value": duration(licence["term_days"]), "@type": "xsd:duration"}},
        {"leftOperand": "spatial", "operator": "eq", "rightOperand": licence["territory"]},
    ]
    found: dict[str, list[Any]] = {"permission": [{"action": "use", "constraint": constraints}]}
    if not licence.get("redistribution"):
        found["prohibition"] = [{"action": "distribute"}]
    return found


__all__ = ["PURPOSE_PREFIX", "duration", "parse_duration", "parse_purpose_iri", "purpose_iri", "rules"]
