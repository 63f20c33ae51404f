"""Registry tables: assets, their content revisions, objections, transfers, and the
per-year counter behind gap-free registration numbers."""

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from market.core.types import UTCDateTime, utcnow


class Asset(SQLModel, table=True):
    __tablename__ = "assets"

    id: str = Field(primary_key=True, max_length=40)
    provider_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    title: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    category: str = Field(max_length=100, index=True)
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list
    grade: str = Field(max_length=20, index=True)
    personal_info: str = Field(max_length=20)
    legal_basis: str | None = Field(default=None, sa_column=Column(Text))
    export_allowed: bool = False
    source: str = Field(default="", sa_column=Column(Text, nullable=False))
    format: str = Field(default="", max_length=100)

    status: str = Field(max_length=20, index=True)
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # bumped by every move (market.core.statemachine)
    frozen: bool = False
    status_reason: str | None = Field(default=None, sa_column=Column(Text))  # the last decision's text
    registration_number: str | None = Field(default=None, unique=True, max_length=32)
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))

    # The newest uploaded content (what a claim must commit to) ...
    content_revision: int = 0
    content_sha256: str | None = Field(default=None, max_length=64, index=True)
    # ... and the revision that is registered (what buyers receive).
    registered_revision: int = 0
    registered_sha256: str | None = Field(default=None, max_length=64, index=True)

    # The claim (rights, signed document) lives on each revision: a change under review
    # never overwrites what is registered.
    certificate: str | None = Field(default=None, sa_column=Column(Text))  # canonical certificate JSON
    certificate_leaf: bytes | None = Field(default=None, sa_column=Column(LargeBinary))

    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    notice_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    notice_ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    registered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AssetRevision(SQLModel, table=True):
    __tablename__ = "asset_revisions"

    asset_id: str = Field(foreign_key="assets.id", primary_key=True, max_length=40)
    revision: int = Field(primary_key=True)
    blob_id: str = Field(max_length=100)
    sha256: str = Field(max_length=64)
    size: int
    merkle_root: str = Field(max_length=64)
    chunk_size: int
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The ownership claim submitted for this revision (none until submitted).
    rights: str | None = Field(default=None, max_length=100)  # JSON list
    claim: str | None = Field(default=None, sa_column=Column(Text))  # canonical claim JSON (the signed bytes)
    claim_key_id: str | None = Field(default=None, max_length=40)
    claim_signature: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Objection(SQLModel, table=True):
    __tablename__ = "objections"

    id: str = Field(primary_key=True, max_length=40)
    asset_id: str = Field(foreign_key="assets.id", index=True, max_length=40)
    objector_id: str = Field(foreign_key="accounts.id", max_length=40)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=20, index=True)  # states.ObjectionStatus
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    resolution_reason: str | None = Field(default=None, sa_column=Column(Text))
    resolved_by: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Transfer(SQLModel, table=True):
    __tablename__ = "asset_transfers"

    id: str = Field(primary_key=True, max_length=40)
    asset_id: str = Field(foreign_key="assets.id", index=True, max_length=40)
    from_id: str = Field(foreign_key="accounts.id", max_length=40)
    to_id: str = Field(foreign_key="accounts.id", index=True, max_length=40)
    document: str = Field(sa_column=Column(Text, nullable=False))  # canonical transfer JSON
    from_key_id: str = Field(max_length=40)
    from_signature: str = Field(max_length=100)
    to_key_id: str | None = Field(default=None, max_length=40)
    to_signature: str | None = Field(default=None, max_length=100)
    status: str = Field(max_length=20, index=True)  # states.TransferStatus
    version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RegistrationCounter(SQLModel, table=True):
    __tablename__ = "registration_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last: int = 0
