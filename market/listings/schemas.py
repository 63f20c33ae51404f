"""Request and response shapes of listings (docs/API.md "Listings")."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from market.accounts.schemas import Strict
from market.core.money import JsonInt, Money
from market.core.types import JsonBool

PlanModel = Literal["one_time", "subscription", "free", "metered"]
Delivery = Literal["download", "sandbox", "api"]
Territory = Literal["domestic", "global"]
ListingStatusName = Literal["active", "paused", "delisted"]
Sort = Literal["relevance", "newest", "price_asc", "price_desc"]

# The purposes a licence may allow and a buyer must declare one of ("无场景不交易"); a
# closed list, so a licence and an order compare codes, not prose. docs/listings.md
# gives each its Chinese name.
PURPOSES = (
    "research", "statistics", "product_development", "ai_training", "risk_control", "credit_assessment",
    "marketing", "public_service", "urban_planning", "operations", "insurance", "navigation",
)
Purpose = Literal[
    "research", "statistics", "product_development", "ai_training", "risk_control", "credit_assessment",
    "marketing", "public_service", "urban_planning", "operations", "insurance", "navigation",
]
MAX_PLANS = 10
Tag = Annotated[str, Field(min_length=1, max_length=50)]
MAX_PRIVATE_BUYERS = 50


class Plan(Strict):
    """A plan as given by the holder; ``id`` keeps a plan's identity across terms versions."""

    id: str | None = Field(default=None, pattern=r"^pln_[0-9a-z]{26}$")
    model: PlanModel
    price: Money
    period_days: JsonInt | None = Field(default=None, ge=1, le=3660)
    private_to: list[str] | None = Field(default=None, min_length=1, max_length=MAX_PRIVATE_BUYERS)
    private: JsonBool | None = Field(default=None, description="read-only (as shown: whether private_to is set); "
                                     "ignored on input")
    delivery: Delivery = Field(default="download", description="download (the default), sandbox (aggregate "
                               "queries only) or api (metered look-ups by key); sandbox and api need the asset's "
                               "table description")
    quota: JsonInt | None = Field(default=None, ge=1, le=1_000_000_000,
                                  description="metered plans: records per period")

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        if self.model == "free" and self.price.amount != 0:
            raise ValueError("a free plan has price 0")
        if self.model != "free" and self.price.amount == 0:
            raise ValueError("a one_time, subscription or metered plan has a price above 0 (use a free plan)")
        if self.model in ("subscription", "metered") and self.period_days is None:
            raise ValueError(f"a {self.model} plan needs period_days")
        if self.model not in ("subscription", "metered") and self.period_days is not None:
            raise ValueError("only subscription and metered plans have period_days")
        if (self.model == "metered") != (self.delivery == "api"):
            raise ValueError("a metered plan delivers by api, and an api plan is metered (price per 1,000 records)")
        if (self.model == "metered") != (self.quota is not None):
            raise ValueError("a metered plan needs a quota (records per period), and only it has one")
        if self.private_to is not None and len(set(self.private_to)) != len(self.private_to):
            raise ValueError("private_to names each buyer once")
        return self


class Licence(Strict):
    purposes: list[Purpose] = Field(min_length=1, max_length=len(PURPOSES))
    term_days: JsonInt = Field(ge=1, le=3660)
    redistribution: JsonBool
    territory: Territory

    @model_validator(mode="after")
    def _distinct(self) -> "Licence":
        if len(set(self.purposes)) != len(self.purposes):
            raise ValueError("purposes names each purpose once")
        return self


def _check_plans(plans: list[Plan]) -> None:
    if len({p.price.currency for p in plans}) > 1:
        raise ValueError("all plans of a listing are priced in one currency")
    ids = [p.id for p in plans if p.id is not None]
    if len(set(ids)) != len(ids):
        raise ValueError("each plan id appears once")


class ListingCreate(Strict):
    asset_id: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(default="", max_length=500)
    description: str = Field(default="", max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    plans: list[Plan] = Field(min_length=1, max_length=MAX_PLANS)
    licence: Licence
    approval_required: JsonBool = False

    @model_validator(mode="after")
    def _rules(self) -> "ListingCreate":
        _check_plans(self.plans)
        if any(p.id is not None for p in self.plans):
            raise ValueError("a new listing's plans get their ids from the market")
        return self


class ListingUpdate(Strict):
    status: ListingStatusName | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    summary: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[Tag] | None = Field(default=None, max_length=20)
    plans: list[Plan] | None = Field(default=None, min_length=1, max_length=MAX_PLANS)
    licence: Licence | None = None
    approval_required: JsonBool | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=2000, description="why (pause, delist)")

    @model_validator(mode="after")
    def _rules(self) -> "ListingUpdate":
        if not self.model_fields_set - {"reason"}:
            raise ValueError("give at least one field to change")
        for name in self.model_fields_set - {"reason"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.plans is not None:
            _check_plans(self.plans)
        return self


class PlanRead(BaseModel):
    """A plan as shown. ``private_to`` (the named buyers) only to the listing's holder and
    staff; a private plan shows everyone else (its buyers) ``private: true`` alone, and an
    order or a contract records it so (``without_buyers``)."""

    id: str
    model: PlanModel
    price: Money
    period_days: int | None = None
    private_to: list[str] | None = None
    private: bool | None = None
    delivery: Delivery | None = Field(default=None, description="how it delivers; null in plans published "
                                      "before plans said so, which download")
    quota: int | None = None

    @model_validator(mode="after")
    def _private(self) -> "PlanRead":
        if self.private_to:
            self.private = True
        return self


def without_buyers(plan: dict[str, Any]) -> dict[str, Any]:
    """``plan`` without the list of the buyers it is private to (they need not know each
    other): a private plan says ``"private": true`` instead; a public plan is unchanged."""
    if not plan.get("private_to") and not plan.get("private"):
        return plan
    return {**{k: v for k, v in plan.items() if k != "private_to"}, "private": True}


class ListingRead(BaseModel):
    id: str
    asset_id: str
    provider: str
    provider_name: str
    registration_number: str | None
    title: str
    summary: str
    description: str
    tags: list[str]
    category: str
    grade: str
    personal_info: str
    export_allowed: bool
    status: ListingStatusName
    frozen: bool = Field(description="frozen by a regulator: the listing itself or its asset (frozen_by)")
    frozen_by: list[Literal["listing", "asset"]] = Field(default_factory=list)
    frozen_reason: str | None = Field(default=None, description="the regulator's reason (the listing's own freeze "
                                                                "first); to the holder and staff only")
    frozen_at: datetime | None = Field(default=None, description="since when it is frozen")
    orderable: bool
    approval_required: bool
    terms_version: int
    terms_sha256: str
    plans: list[PlanRead] = Field(description="only the plans the caller may order")
    licence: Licence
    created_at: datetime
    updated_at: datetime


class SearchPage(BaseModel):
    items: list[ListingRead]
    next_cursor: str | None
    facets: dict[str, dict[str, int]]
    total: int


def plan_dicts(plans: list[Any]) -> list[dict[str, Any]]:
    return [p if isinstance(p, dict) else p.model_dump(exclude_none=True, exclude={"private"}) for p in plans]
