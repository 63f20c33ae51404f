"""Tables of the protocol's processes (negotiations, transfers) and of the callbacks the
market owes consumers."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime


class DspNegotiation(SQLModel, table=True):
    """A contract negotiation: the provider's pid is ``id``; its order once the gates let it be placed."""

    __tablename__ = "dsp_negotiations"
    __table_args__ = (UniqueConstraint("account_id", "consumer_pid", name="uq_dsp_negotiations_consumer"),)

    id: str = Field(primary_key=True, max_length=40)  # dng_…, the providerPid
    consumer_pid: str = Field(max_length=500)
    account_id: str = Field(max_length=40, index=True)  # the consumer: a buyer account
    listing_id: str = Field(max_length=40)
    plan_id: str = Field(max_length=40)
    purpose: str = Field(max_length=60)
    order_id: str | None = Field(default=None, max_length=40, index=True)
    status: str = Field(max_length=20)  # the protocol's state: REQUESTED … FINALIZED, TERMINATED
    callback_address: str = Field(max_length=2000)
    code: str | None = Field(default=None, max_length=100)  # why it was terminated: a problem type
    reason: str | None = Field(default=None, max_length=500)
    version: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class DspTransfer(SQLModel, table=True):
    """A pull transfer under a finalized negotiation; ``token_sha256`` is the one token
    that reads its content while it is started (a new one at every start)."""

    __tablename__ = "dsp_transfers"
    __table_args__ = (UniqueConstraint("account_id", "consumer_pid", name="uq_dsp_transfers_consumer"),
                      Index("ix_dsp_transfers_order", "order_id", "status"))

    id: str = Field(primary_key=True, max_length=40)  # dtp_…, the providerPid
    consumer_pid: str = Field(max_length=500)
    account_id: str = Field(max_length=40, index=True)
    negotiation_id: str = Field(max_length=40)
    order_id: str = Field(max_length=40)
    status: str = Field(max_length=20)  # REQUESTED, STARTED, SUSPENDED, COMPLETED, TERMINATED
    suspended_by: str | None = Field(default=None, max_length=20)  # consumer / provider
    token_sha256: str | None = Field(default=None, max_length=64, index=True)
    callback_address: str = Field(max_length=2000)
    code: str | None = Field(default=None, max_length=100)
    reason: str | None = Field(default=None, max_length=500)
    version: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class DspCallback(SQLModel, table=True):
    """One message owed to a consumer: posted until it is answered 2xx or its schedule runs
    out. ``held`` while the request that wrote it has not been answered yet (a callback
    never overtakes its ``201``); released after the answer, or by age if the process died."""

    __tablename__ = "dsp_callbacks"
    __table_args__ = (Index("ix_dsp_callbacks_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                          primary_key=True, autoincrement=True))
    process_id: str = Field(max_length=40, index=True)  # dng_… / dtp_…
    url: str = Field(max_length=2100)
    message_type: str = Field(max_length=60)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the body, exactly as sent
    held: bool = Field(default=False)
    attempts: int = Field(default=0)
    status: str = Field(max_length=20)  # pending / delivered / failed
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


TABLES = ("dsp_negotiations", "dsp_transfers", "dsp_callbacks")
