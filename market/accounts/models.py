"""Account tables: parties, their API tokens and their Ed25519 signing keys."""

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime, utcnow


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    roles: str = Field(max_length=100)  # comma-separated, sorted: "buyer,provider"
    uscc: str | None = Field(default=None, max_length=18, unique=True)
    jurisdiction: str = Field(max_length=2)
    controller_uscc: str | None = Field(default=None, max_length=18, index=True)  # its controlling entity
    status: str = Field(max_length=20, index=True)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # bumped by every move (market.core.statemachine)
    suspended: bool = Field(default=False)
    status_reason: str | None = Field(default=None, max_length=2000)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_by: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split(","))


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    token_hash: str = Field(unique=True, max_length=64)
    label: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TokenCount(SQLModel, table=True):
    """How many live (unrevoked) API tokens an account holds: the cap
    (``MARKET_MAX_TOKENS_PER_ACCOUNT``) is checked on this one row, whatever the
    account's history, and on PostgreSQL its row lock makes two requests at once take
    turns for the last free place."""

    __tablename__ = "token_counts"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=40)
    live: int = Field(default=0)


class AccountKey(SQLModel, table=True):
    __tablename__ = "account_keys"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    public_key: str = Field(unique=True, max_length=44)  # standard base64 of 32 raw bytes
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RegulatorEnrollment(SQLModel, table=True):
    """A regulator's key as its authority enrolled it (market.accounts.enrollment): the
    signed enrollment file is kept whole, so anyone shown it can check it again."""

    __tablename__ = "regulator_enrollments"

    id: str = Field(primary_key=True, max_length=40)  # enr_…
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    key_id: str = Field(foreign_key="account_keys.id", unique=True, max_length=40)
    authority: str = Field(max_length=300)  # "<name>+<key id hex>" of the authority that signed
    enrollment: str = Field(sa_column=Column(Text, nullable=False))  # the file: {"enrollment", "signature"}
    enrollment_sha256: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
