"""Trading tables: orders, the confidential documents behind trade ledger entries,
deliveries, disputes, payouts, and refused attempts kept for the regulator."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime, utcnow


def _money() -> int:
    return Field(default=0, sa_column=Column(BigInteger, nullable=False))


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_buyer_created", "buyer_id", "id"),
        # The order_burst rule reads a buyer's orders of the last window, oldest first, a
        # few at most: a range of this index, however many orders the buyer ever placed.
        Index("ix_orders_buyer_created_at", "buyer_id", "created_at", "id"),
        Index("ix_orders_provider_created", "provider_id", "id"),
        Index("ix_orders_status_expires", "status", "expires_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    listing_id: str = Field(foreign_key="listings.id", index=True, max_length=40)
    asset_id: str = Field(foreign_key="assets.id", max_length=40)
    buyer_id: str = Field(foreign_key="accounts.id", max_length=40)
    provider_id: str = Field(foreign_key="accounts.id", max_length=40)

    # The terms as accepted: the listing's version and its digest, the plan and licence.
    terms_version: int
    terms_sha256: str = Field(max_length=64)
    plan_id: str = Field(max_length=40)
    plan: str = Field(sa_column=Column(Text, nullable=False))  # JSON, the plan as offered
    licence: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    purpose: str = Field(max_length=40)
    payment_method: str = Field(max_length=20)

    currency: str = Field(max_length=3)
    price: int = _money()
    fee: int = _money()
    provider_share: int = _money()

    status: str = Field(max_length=20, index=True)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    needs_holder_approval: bool = False
    needs_regulator_approval: bool = False
    holder_decision: str | None = Field(default=None, max_length=20)  # approve / reject
    regulator_decision: str | None = Field(default=None, max_length=20)
    status_reason: str | None = Field(default=None, sa_column=Column(Text))

    # The buyer's signed order document, when it signed one.
    order_document: str | None = Field(default=None, sa_column=Column(Text))
    buyer_key_id: str | None = Field(default=None, max_length=40)
    buyer_signature: str | None = Field(default=None, max_length=100)

    # Payment: the gateway's object (a PaymentIntent) and what settled it.
    payment_attempt: int = 0
    intent_id: str | None = Field(default=None, unique=True, max_length=255)
    client_secret: str | None = Field(default=None, max_length=255)
    payment_reference: str | None = Field(default=None, max_length=255)
    failure_code: str | None = Field(default=None, max_length=100)
    # A PaymentIntent the market still has to cancel at the gateway: set in the
    # transaction that ended the order unpaid, cleared once the gateway cancelled it.
    intent_to_cancel: str | None = Field(default=None, index=True, max_length=255)

    # Settlement: the contract (交易凭证) and the access it gives.
    asset_revision: int | None = None  # the registered revision at settlement
    contract: str | None = Field(default=None, sa_column=Column(Text))  # canonical contract JSON
    contract_leaf: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    settled_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    refunded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    refund_reference: str | None = Field(default=None, max_length=255)

    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PaymentReturn(SQLModel, table=True):
    """Money that reached the market for an order it did not (or no longer could) settle
    with it: a card payment of an order ended meanwhile, or of a superseded attempt; a
    bank transfer for an order that could not be settled. It goes back to the buyer: a
    card payment is refunded at the gateway (``pending`` until it is, then ``refunded``),
    a bank transfer is ``owed`` (the operator sends it back by bank). One per payment received."""

    __tablename__ = "payment_returns"
    __table_args__ = (UniqueConstraint("order_id", "paid_reference", name="uq_payment_returns_payment"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=40)
    method: str = Field(max_length=20)  # stripe / bank_transfer
    paid_reference: str = Field(max_length=255)  # stripe:<intent> / bank:<reference>
    currency: str = Field(max_length=3)
    amount: int = _money()
    cause: str = Field(max_length=40)  # not-settleable / order-ended / superseded-attempt
    # stripe:<refund> once refunded at the gateway; its status is derived (``returns.status_of``)
    refund_reference: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    refunded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryBatch(SQLModel, table=True):
    """The receipts of one order's deliveries over one period, on the ledger as one
    ``delivery.sent`` entry once closed (``market.trading.receipts``): its document holds
    the counts and the RFC 9162 Merkle root of the receipts, in ``position`` order."""

    __tablename__ = "delivery_batches"
    __table_args__ = (Index("ix_delivery_batches_open", "closed_at", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=40)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    receipts: int = 0
    bytes_sent: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    merkle_root: str | None = Field(default=None, max_length=64)  # hex, once closed
    document: str | None = Field(default=None, sa_column=Column(Text))  # the salted document, once closed
    leaf: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # its ledger entry


class Delivery(SQLModel, table=True):
    """One download's receipt: what the server handed to the connection. ``receipt`` is
    the canonical JSON that is leaf ``position`` of its batch's Merkle tree (null for
    deliveries recorded before batches, each of which has a ledger entry of its own)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_batch_position", "batch_id", "position", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=40)
    revision: int
    first_byte: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_byte: int = Field(sa_column=Column(BigInteger, nullable=False))  # inclusive
    bytes_sent: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(max_length=64)  # of the bytes sent
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    batch_id: int | None = Field(default=None, foreign_key="delivery_batches.id")
    position: int | None = None  # the receipt's leaf index in its batch
    receipt: str | None = Field(default=None, sa_column=Column(Text))  # canonical JSON: the leaf's bytes


class Dispute(SQLModel, table=True):
    __tablename__ = "disputes"

    id: str = Field(primary_key=True, max_length=40)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=40)
    buyer_id: str = Field(foreign_key="accounts.id", max_length=40)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=20, index=True)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    resolution_reason: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Payout(SQLModel, table=True):
    __tablename__ = "payouts"

    id: str = Field(primary_key=True, max_length=40)
    provider_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    period: str = Field(max_length=7)  # YYYY-MM
    currency: str = Field(max_length=3)
    amount: int = _money()
    reference: str = Field(max_length=255)
    recorded_by: str = Field(foreign_key="accounts.id", max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UsagePeriod(SQLModel, table=True):
    """One period of a metered order: its counts while open, its charge once closed."""

    __tablename__ = "usage_periods"
    __table_args__ = (UniqueConstraint("order_id", "period", name="uq_usage_periods_order_period"),
                      Index("ix_usage_periods_status_ends", "status", "ends_at"))

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                         primary_key=True, autoincrement=True))
    order_id: str = Field(foreign_key="orders.id", max_length=40)
    period: int  # 1, 2, … from the order's settlement
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    calls: int = 0
    records: int = 0
    status: str = Field(default="open", max_length=20)  # open, billed, paid (trading.states.USAGE_PERIOD)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    currency: str = Field(max_length=3)
    charge: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))  # fen, rounded up
    fee: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))  # the market's, of the charge
    reference: str = Field(max_length=60)
    receipts_root: str | None = Field(default=None, max_length=64)
    document: str | None = Field(default=None, sa_column=Column(Text))  # the salted usage.period document
    leaf: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # its ledger entry
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    payment_reference: str | None = Field(default=None, max_length=255)
