"""Oversight tables: trade statistics kept in the settling transaction, alerts, the
regulator's actions, and the position of the alert evaluator."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, SmallInteger, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime, utcnow

# The counters below are kept in ``shard`` rows per key: on PostgreSQL each connection
# adds to the row of its own shard (its backend's pid modulo ``SHARDS``), so concurrent
# settlements wait on each other's row locks only when their connections share a shard;
# readers sum a key's shards. SQLite writes shard 0 (one writer at a time).
# market.oversight.stats, docs/performance.md.
SHARDS = 64


def _shard() -> Column[int]:
    return Column(SmallInteger, nullable=False, server_default="0")


class TradeStat(SQLModel, table=True):
    """Settled trades and refunds counted by day and dimension, updated in the transaction
    that settles or refunds an order, so the overview never scans the orders."""

    __tablename__ = "trade_stats"
    __table_args__ = (
        UniqueConstraint("day", "currency", "category", "grade", "provider_id", "region", "shard",
                         name="uq_trade_stats_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(max_length=10, index=True)  # YYYY-MM-DD (UTC)
    currency: str = Field(max_length=3)
    category: str = Field(max_length=100)
    grade: str = Field(max_length=20)
    provider_id: str = Field(max_length=40)
    region: str = Field(max_length=6)  # characters 3-8 of the provider's USCC ("" when it has none)
    shard: int = Field(default=0, sa_column=_shard())
    orders: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunds: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunded_value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class TradeParty(SQLModel, table=True):
    """Who traded on which day (for distinct buyers and providers over a period)."""

    __tablename__ = "trade_parties"

    day: str = Field(primary_key=True, max_length=10)
    currency: str = Field(primary_key=True, max_length=3)
    role: str = Field(primary_key=True, max_length=10)  # buyer / provider
    account_id: str = Field(primary_key=True, max_length=40)


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("rule", "subject_key", "window", name="uq_alerts_once"),)

    id: str = Field(primary_key=True, max_length=40)
    rule: str = Field(max_length=40, index=True)
    subject_key: str = Field(max_length=200)  # what the alert is about, canonical (e.g. sorted account ids)
    window: str = Field(max_length=40)  # the window it belongs to (e.g. a day or a period start)
    subjects: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of ids
    evidence: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    status: str = Field(max_length=20, index=True)  # open / closed
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = Field(default=None, max_length=40)
    close_reason: str | None = Field(default=None, sa_column=Column(Text))


class AlertedOrder(SQLModel, table=True):
    """Which orders an alert is about (the trade search's ``alerted`` filter)."""

    __tablename__ = "alerted_orders"

    alert_id: str = Field(foreign_key="alerts.id", primary_key=True, max_length=40)
    order_id: str = Field(foreign_key="orders.id", primary_key=True, max_length=40, index=True)


class OversightAction(SQLModel, table=True):
    __tablename__ = "oversight_actions"
    __table_args__ = (Index("ix_oversight_actions_target", "target"),)

    id: str = Field(primary_key=True, max_length=40)
    action: str = Field(max_length=40)
    target: str = Field(max_length=40)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    actor_id: str = Field(foreign_key="accounts.id", max_length=40)
    entry_sha256: str | None = Field(default=None, max_length=64)  # the leaf hash of its ledger entry
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class EvaluatorMark(SQLModel, table=True):
    """How far the alert evaluator has read each source (e.g. ``trade_documents`` ids),
    and the ids below that it has not seen yet (``gaps``: JSON ``{"id": first seen, epoch
    seconds}``): on PostgreSQL an id is taken at insert and its transaction may commit
    after a later one, so a skipped id is looked for again until ``alerts.REREAD`` has
    passed (a rolled-back insert leaves one that never fills)."""

    __tablename__ = "evaluator_marks"

    source: str = Field(primary_key=True, max_length=40)
    position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    gaps: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


class TradeDay(SQLModel, table=True):
    """Per day and currency, the day series of the overview (a handful of rows a day)."""

    __tablename__ = "trade_days"

    day: str = Field(primary_key=True, max_length=10)
    currency: str = Field(primary_key=True, max_length=3)
    shard: int = Field(default=0, sa_column=Column(SmallInteger, primary_key=True, server_default="0"))
    orders: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunds: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunded_value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class TradeStatMonth(SQLModel, table=True):
    """``trade_stats`` rolled up by calendar month: a period's whole months are read here,
    only its partial months at the edges from the day rows."""

    __tablename__ = "trade_stats_monthly"
    __table_args__ = (
        UniqueConstraint("month", "currency", "category", "grade", "provider_id", "region", "shard",
                         name="uq_trade_stats_monthly_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, index=True)  # YYYY-MM (UTC)
    currency: str = Field(max_length=3)
    category: str = Field(max_length=100)
    grade: str = Field(max_length=20)
    provider_id: str = Field(max_length=40)
    region: str = Field(max_length=6)
    shard: int = Field(default=0, sa_column=_shard())
    orders: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunds: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    refunded_value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class TradePartyMonth(SQLModel, table=True):
    """Who traded in which month (distinct parties over whole months)."""

    __tablename__ = "trade_parties_monthly"

    month: str = Field(primary_key=True, max_length=7)
    currency: str = Field(primary_key=True, max_length=3)
    role: str = Field(primary_key=True, max_length=10)
    account_id: str = Field(primary_key=True, max_length=40)


class RegulatorAct(SQLModel, table=True):
    """A regulator's signed decision (market.oversight.acts): the document as signed,
    its hash, the key and the signature. Its ledger entry holds the hash, key id and
    signature; the document (with its salt) is here for the regulator's replay. A
    document is accepted once."""

    __tablename__ = "regulator_acts"

    id: str = Field(primary_key=True, max_length=40)  # sig_…
    kind: str = Field(max_length=20)  # action / approval / alert_closure
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    key_id: str = Field(max_length=40)
    signature: str = Field(max_length=100)
    subject: str = Field(max_length=60)  # what the act decided: action:act_…, order:ord_…, alert:alr_…
    document: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON, as signed
    document_sha256: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DashboardSession(SQLModel, table=True):
    """A regulator's dashboard session: the cookie holds a random id whose SHA-256 is
    ``id_sha256``; signing out ends it here, so a copied cookie is dead from then on."""

    __tablename__ = "dashboard_sessions"

    id: str = Field(primary_key=True, max_length=40)  # ses_…
    id_sha256: str = Field(unique=True, max_length=64)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    key_id: str = Field(max_length=40)  # the enrolled key that signed the sign-in challenge
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Refusal(SQLModel, table=True):
    """An attempt refused by a gate the regulator watches (export, self-dealing, core
    data), kept though the request changed nothing else (``AttemptRefused``)."""

    __tablename__ = "refusals"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40, index=True)  # the problem type: export-not-allowed, self-dealing
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    listing_id: str | None = Field(default=None, max_length=40)
    asset_id: str | None = Field(default=None, max_length=40)
    detail: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
