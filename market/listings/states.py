"""Statuses of a listing and their transition table (pure data).

DESIGN §4.2, docs/API.md "Listings": a listing is published ``active``; its holder pauses
and resumes it, and may delist it (final). ``frozen`` is a flag beside the status, set
and cleared by a regulator; while it is set the holder can neither resume nor edit it.
Whether a listing can be ordered also depends on its asset (market.listings.access).
"""

from enum import StrEnum

from market.core.statemachine import Machine, Transition
from market.listings.models import Listing


class ListingStatus(StrEnum):
    active = "active"
    paused = "paused"
    delisted = "delisted"


L = ListingStatus
OPEN = frozenset({L.active, L.paused})

T = Transition.of

LISTING = Machine("listing", Listing, ListingStatus, L.active, {
    "edit": T(OPEN, None, "listing.updated", frozen_blocks=True),
    "change_terms": T(OPEN, None, "listing.terms_changed", frozen_blocks=True),
    "pause": T({L.active}, L.paused, "listing.paused"),
    "resume": T({L.paused}, L.active, "listing.resumed", frozen_blocks=True),
    # Delisting stays open while frozen: a holder may always withdraw an offer.
    "delist": T(OPEN, L.delisted, "listing.delisted"),
    "freeze": T(OPEN, None, "listing.frozen"),
    "unfreeze": T(OPEN, None, "listing.unfrozen"),
}, subject=lambda listing: f"listing:{listing.id}", created="listing.published")

MACHINES = (LISTING,)
