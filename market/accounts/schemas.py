"""Request and response shapes for accounts (never the table models themselves)."""

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.accounts import uscc


class Role(StrEnum):
    provider = "provider"
    buyer = "buyer"
    regulator = "regulator"
    operator = "operator"


class AccountStatus(StrEnum):
    pending = "pending"
    verified = "verified"
    rejected = "rejected"


PARTY_ROLES = frozenset({Role.provider, Role.buyer})
STAFF_ROLES = frozenset({Role.regulator, Role.operator})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AccountCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["enterprise", "individual", "institution"]
    roles: list[Role] = Field(min_length=1, max_length=4)
    uscc: str | None = Field(default=None, description="unified social credit code; required for enterprises")
    jurisdiction: str | None = Field(default=None, description="ISO 3166-1 alpha-2; the market's own by default")
    controller_uscc: str | None = Field(
        default=None, description="the USCC of the entity that controls this one (related-party checks)")

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[Role]) -> list[Role]:
        if len(set(roles)) != len(roles):
            raise ValueError("roles must not repeat")
        if set(roles) & STAFF_ROLES and len(roles) > 1:
            raise ValueError("a regulator or operator account has that one role only")
        return sorted(roles)

    @field_validator("uscc", "controller_uscc")
    @classmethod
    def _uscc(cls, value: str | None) -> str | None:
        return None if value is None else uscc.validate(value)

    @field_validator("jurisdiction")
    @classmethod
    def _jurisdiction(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 2 or not value.isascii() or not value.isupper() or pycountry.countries.get(alpha_2=value) is None:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return value

    @model_validator(mode="after")
    def _kind_rules(self) -> "AccountCreate":
        if self.kind == "enterprise" and self.uscc is None:
            raise ValueError("uscc is required for an enterprise")
        if self.kind == "individual" and self.uscc is not None:
            raise ValueError("uscc must be left out for an individual")
        if self.controller_uscc is not None and self.controller_uscc == self.uscc:
            raise ValueError("controller_uscc names the entity that controls this one, not itself")
        return self


class AccountRead(BaseModel):
    id: str
    name: str
    kind: str
    roles: list[str]
    uscc: str | None
    controller_uscc: str | None = None
    jurisdiction: str
    status: str
    suspended: bool
    created_at: datetime
    verified_at: datetime | None


class SignUpResult(BaseModel):
    account: AccountRead
    token: str


class VerificationDecision(Strict):
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2000)


# Encodings of the eight Ed25519 points of small order (the identity, the point of
# order 2, two of order 4, four of order 8) and their non-canonical forms, with the sign
# bit cleared: libsodium's ge25519_has_small_order list. A public key of small order
# "verifies" signatures that are not bound to any message (RFC 8032 §5.1.7 permits it).
_SMALL_ORDER = frozenset(bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
))


def has_small_order(raw: bytes) -> bool:
    return raw[:31] + bytes([raw[31] & 0x7F]) in _SMALL_ORDER


class KeyCreate(Strict):
    public_key: str = Field(description="standard base64 of the 32 raw bytes of an Ed25519 public key")

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("public_key is not valid standard base64") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
        if has_small_order(raw):
            raise ValueError("public_key is a point of small order, which any signature could match; "
                             "generate a real key pair")
        return base64.b64encode(raw).decode()


class KeyRead(BaseModel):
    id: str
    public_key: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreate(Strict):
    label: str | None = Field(default=None, max_length=100)


class TokenRead(BaseModel):
    id: str
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenRead):
    token: str
