"""Tables of usage-controlled delivery: sandbox queries and metered calls (their periods, which carry
the money, are ``market.trading.models.UsagePeriod``)."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, Text
from sqlalchemy import Column as SAColumn
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime


class SandboxQuery(SQLModel, table=True):
    """One query of a sandbox order: reserved (``running``), then ``answered`` or ``failed``.

    The budget is spent when the query is reserved, under the order's lock, and given back
    if it fails; so two queries at once can never spend more than the budget."""

    __tablename__ = "sandbox_queries"
    __table_args__ = (Index("ix_sandbox_queries_order", "order_id", "id"),)

    id: str = Field(primary_key=True, max_length=40)
    order_id: str = Field(foreign_key="orders.id", max_length=40)
    buyer_id: str = Field(foreign_key="accounts.id", max_length=40)
    sql: str = Field(sa_column=SAColumn(Text, nullable=False))
    query_sha256: str = Field(max_length=64)
    rule_version: str = Field(max_length=40)
    table_sha256: str = Field(max_length=64)
    status: str = Field(max_length=20)  # running, answered, failed (usage.states.SANDBOX_QUERY)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    epsilon: float = 0.0
    columns: str | None = Field(default=None, sa_column=SAColumn(Text))  # JSON list of names
    rows: str | None = Field(default=None, sa_column=SAColumn(Text))  # JSON rows (the buyer's alone)
    row_count: int = 0
    suppressed_groups: int = 0
    result_sha256: str | None = Field(default=None, max_length=64)
    failure: str | None = Field(default=None, sa_column=SAColumn(Text))
    document: str | None = Field(default=None, sa_column=SAColumn(Text))  # the salted usage.query document
    leaf: bytes | None = Field(default=None, sa_column=SAColumn(LargeBinary))  # its ledger entry
    created_at: datetime = Field(sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UsageCall(SQLModel, table=True):
    """One metered look-up: its receipt's hash is a leaf of its period's Merkle root."""

    __tablename__ = "usage_calls"
    __table_args__ = (Index("ix_usage_calls_period", "period_id", "id"),)

    id: int | None = Field(default=None, sa_column=SAColumn(BigInteger().with_variant(Integer(), "sqlite"),
                                                         primary_key=True, autoincrement=True))
    period_id: int = Field(sa_column=SAColumn(BigInteger, ForeignKey("usage_periods.id"), nullable=False))
    at: datetime = Field(sa_type=UTCDateTime)
    column: str = Field(max_length=100)
    value_sha256: str = Field(max_length=64)
    records: int
    result_sha256: str = Field(max_length=64)
