"""Tables of the inbox, webhook endpoints, webhook messages and their delivery attempts."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime


class Notification(SQLModel, table=True):
    """One inbox item: what one account was told of one event."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_account_id", "account_id", "id"),
        UniqueConstraint("event_id", "account_id", name="uq_notifications_event_account"),
    )

    id: str = Field(primary_key=True, max_length=40)  # ntf_…
    account_id: str = Field(max_length=40)
    event_id: str = Field(max_length=40)  # evt_…
    event: str = Field(max_length=60)
    subject: str = Field(max_length=80)
    data: str = Field(sa_column=Column(Text, nullable=False))  # JSON object
    created_at: datetime = Field(sa_type=UTCDateTime)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: str = Field(primary_key=True, max_length=40)  # whk_…
    account_id: str = Field(max_length=40, index=True)
    url: str = Field(max_length=2000)
    events: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of names and ``prefix.*`` patterns
    secret: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # the 32 key bytes wrapped by the master key
    enabled: bool = Field(default=True)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)


class WebhookMessage(SQLModel, table=True):
    """One event for one endpoint: sent until it is delivered or its schedule runs out.
    ``next_attempt_at`` is also the lease of a sender that claimed it."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_messages_event_endpoint"),
        Index("ix_webhook_messages_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                          primary_key=True, autoincrement=True))
    event_id: str = Field(max_length=40)  # evt_…, the ``webhook-id`` of every attempt
    endpoint_id: str = Field(max_length=40, index=True)
    event: str = Field(max_length=60)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the body, exactly as sent
    attempts: int = Field(default=0)
    status: str = Field(max_length=20)  # pending / delivered / failed
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """One try at sending one message: the receiver's status code, or the error."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                                          primary_key=True, autoincrement=True))
    message_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    endpoint_id: str = Field(max_length=40)
    event_id: str = Field(max_length=40)
    attempt: int
    attempted_at: datetime = Field(sa_type=UTCDateTime)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


TABLES = ("notifications", "webhook_endpoints", "webhook_messages", "webhook_attempts")
