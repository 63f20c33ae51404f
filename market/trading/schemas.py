"""Request and response shapes of trading (docs/API.md "Orders")."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from market.accounts.schemas import Strict
from market.core.money import Money
from market.listings.schemas import Licence, PlanRead, Purpose

PaymentMethod = Literal["stripe", "bank_transfer", "free", "postpaid"]
Decision = Literal["approve", "reject"]
Side = Literal["buyer", "provider"]


class OrderCreate(Strict):
    """Either the fields, or a signed order document (``signing_bytes``, ``key_id``, ``signature``)."""

    listing_id: str | None = Field(default=None, min_length=1, max_length=40)
    plan_id: str | None = Field(default=None, min_length=1, max_length=40)
    purpose: Purpose | None = None
    payment_method: PaymentMethod | None = None
    signing_bytes: str | None = Field(default=None, min_length=1, max_length=8000)
    key_id: str | None = Field(default=None, min_length=1, max_length=40)
    signature: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_form(self) -> "OrderCreate":
        plain = [self.listing_id, self.plan_id, self.purpose, self.payment_method]
        signed = [self.signing_bytes, self.key_id, self.signature]
        if all(v is not None for v in signed) and all(v is None for v in plain):
            return self
        if all(v is not None for v in plain) and all(v is None for v in signed):
            return self
        raise ValueError("give listing_id, plan_id, purpose and payment_method; or signing_bytes, key_id and "
                         "signature of an order document")


class DecisionBody(Strict):
    decision: Decision
    reason: str = Field(default="", max_length=2000)


class BankPayment(Strict):
    reference: str = Field(min_length=1, max_length=255,
                           description="the bank's own reference of the transfer received (its statement line)")
    amount: Money
    quoted_reference: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="what the payer wrote on the transfer (附言); when given it must name this order: the "
                    "reference of its payment.instructions (422 reference-mismatch)")


class DisputeCreate(Strict):
    reason: str = Field(min_length=1, max_length=5000)


class Resolution(Strict):
    decision: Literal["refund", "reject"]
    reason: str = Field(min_length=1, max_length=2000)


class PayoutCreate(Strict):
    provider: str = Field(min_length=1, max_length=40)
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    amount: Money
    reference: str = Field(min_length=1, max_length=255)


class Approvals(BaseModel):
    holder: Literal["pending", "approved", "rejected", "not_required"]
    regulator: Literal["pending", "approved", "rejected", "not_required"]


class PaymentReturnRead(BaseModel):
    """A payment that goes back to the buyer because the order was not settled with it."""

    reference: str = Field(description="the payment that goes back: stripe:<intent> or bank:<reference>")
    amount: Money
    cause: str = Field(description="not-settleable, order-ended or superseded-attempt")
    status: Literal["pending", "refunded", "owed"] = Field(
        description="card: pending until the gateway refunded it, then refunded; bank transfer: owed")
    refund_reference: str | None = None
    created_at: datetime
    refunded_at: datetime | None = None


class PaymentRead(BaseModel):
    provider: PaymentMethod
    intent_id: str | None = None
    client_secret: str | None = Field(default=None, description="to the buyer only")
    reference: str | None = None
    attempt: int = 0
    failure_code: str | None = None
    returns: list[PaymentReturnRead] = Field(
        default_factory=list, description="payments going back to the buyer (its buyer and staff; one order's view)")
    instructions: dict[str, str] | None = Field(
        default=None, description='bank transfers awaiting payment: {"account", "reference"} to quote')


class ListingRef(BaseModel):
    """The listing an order or dispute is about, named as it reads now."""

    id: str
    title: str


class Terms(BaseModel):
    listing_id: str
    terms_version: int
    terms_sha256: str
    plan: PlanRead
    licence: Licence


class OrderRead(BaseModel):
    id: str
    listing_id: str
    listing: ListingRef | None = Field(default=None, description="the listing's id and title (title as it reads now)")
    asset_id: str
    buyer: str
    provider: str
    status: str
    status_reason: str | None = Field(default=None, description="why the order was rejected or ended")
    purpose: str
    approvals: Approvals
    price: Money
    fee: Money
    provider_share: Money
    terms: Terms
    payment: PaymentRead
    signed: bool = Field(description="the buyer signed the order document")
    settled_at: datetime | None
    expires_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OrderToSign(BaseModel):
    document: dict[str, Any]
    signing_bytes: str


class DisputeRead(BaseModel):
    id: str
    order_id: str
    status: str
    reason: str
    resolution_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


class PayoutRead(BaseModel):
    id: str
    provider: str
    period: str
    amount: Money
    reference: str
    created_at: datetime
