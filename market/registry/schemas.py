"""Request and response shapes of the registry (never the table models themselves)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from market.accounts.schemas import Strict
from market.core.types import JsonBool
from market.registry.categories import CategoryId

Grade = Literal["general", "important", "core"]
PersonalInfo = Literal["none", "deidentified", "anonymized", "identifiable"]
Tag = Field(min_length=1, max_length=50)


class AssetCreate(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    category: CategoryId
    tags: list[str] = Field(default_factory=list, max_length=20)
    grade: Grade
    personal_info: PersonalInfo
    legal_basis: str | None = Field(default=None, min_length=1, max_length=2000)
    export_allowed: JsonBool = False
    source: str = Field(default="", max_length=2000, description="how the data was obtained")
    format: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _tags(self) -> "AssetCreate":
        if any(not t or len(t) > 50 for t in self.tags):
            raise ValueError("each tag has 1 to 50 characters")
        return self


class AssetUpdate(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    category: CategoryId | None = None
    tags: list[str] | None = Field(default=None, max_length=20)
    grade: Grade | None = None
    personal_info: PersonalInfo | None = None
    legal_basis: str | None = Field(default=None, min_length=1, max_length=2000)
    export_allowed: JsonBool | None = None
    source: str | None = Field(default=None, max_length=2000)
    format: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _something(self) -> "AssetUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for name in self.model_fields_set:
            if name != "legal_basis" and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.tags is not None and any(not t or len(t) > 50 for t in self.tags):
            raise ValueError("each tag has 1 to 50 characters")
        return self


class Commitment(BaseModel):
    sha256: str
    size: int
    merkle_root: str
    chunk_size: int
    revision: int


class AssetRead(BaseModel):
    id: str
    provider_id: str
    title: str
    description: str
    category: str
    tags: list[str]
    grade: str
    personal_info: str
    legal_basis: str | None
    export_allowed: bool
    source: str
    format: str
    status: str
    status_reason: str | None = None  # the last decision's text (holder and staff only)
    frozen: bool
    frozen_reason: str | None = None  # while frozen: the regulator's reason (holder and staff only)
    frozen_at: datetime | None = None  # while frozen: since when
    registration_number: str | None
    commitment: Commitment | None  # the registered content once registered, else the newest upload
    uploaded_commitment: Commitment | None = None  # the newest upload, when it is not ``commitment``
    registered_revision: int
    rights: list[str]
    conflicts_with: list[str] | None = None  # other parties' assets with this content (holder and staff only)
    submitted_at: datetime | None
    notice_ends_at: datetime | None
    registered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContentRead(BaseModel):
    sha256: str
    size: int
    merkle_root: str
    chunk_size: int
    revision: int


class ClaimToSign(BaseModel):
    claim: dict
    signing_bytes: str


class SignedSubmission(Strict):
    signing_bytes: str = Field(max_length=100_000, description="base64, exactly as received")
    key_id: str = Field(min_length=1, max_length=40)
    signature: str = Field(min_length=1, max_length=200, description="base64 Ed25519 signature over signing_bytes")


class ReviewDecision(Strict):
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2000)
    override_conflict: JsonBool = False

    @model_validator(mode="after")
    def _reasons(self) -> "ReviewDecision":
        if (self.decision == "reject" or self.override_conflict) and not self.reason:
            raise ValueError("a rejection or a conflict override needs a reason")
        return self


class ObjectionCreate(Strict):
    reason: str = Field(min_length=1, max_length=5000)
    evidence: str = Field(default="", max_length=20_000)


class ObjectionRead(BaseModel):
    id: str
    asset_id: str
    objector_id: str
    reason: str
    evidence: str
    status: str
    resolution_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


class ObjectionResolution(Strict):
    decision: Literal["uphold", "dismiss"]
    reason: str = Field(min_length=1, max_length=2000)


class CancelRequest(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class TransferToSign(BaseModel):
    document: dict
    signing_bytes: str


class TransferAccept(Strict):
    key_id: str = Field(min_length=1, max_length=40)
    signature: str = Field(min_length=1, max_length=200)


class TransferRead(BaseModel):
    id: str
    asset_id: str
    from_id: str
    to_id: str
    status: str
    document: dict
    created_at: datetime
    completed_at: datetime | None


class CategoryRead(BaseModel):
    id: str
    name_zh: str
    name_en: str


class CategoryList(BaseModel):
    items: list[CategoryRead]


class RegionRead(BaseModel):
    code: str
    name_zh: str
    province: str | None
    city: str | None  # null for a province, and for a county-level city its province governs directly
    level: Literal["province", "prefecture", "county"]
    current: bool  # false: abolished since (kept because older USCCs carry it)
