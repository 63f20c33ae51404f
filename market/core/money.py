"""Money (API.md "Conventions"): ``{"amount": 12345, "currency": "CNY"}``, the amount an
integer of minor units (fen). Never a float: ``12.5`` or ``"12"`` is refused, not rounded."""

from typing import Annotated, Any

import pycountry
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_AMOUNT = 10**15  # minor units; far beyond any trade, well inside a signed 64-bit column


def _only_int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a JSON integer of minor units (fen), not a string or a fraction")
    return value


# An integer and nothing else: the framework validates request bodies leniently
# (12.0 and "12" would otherwise pass as 12).
JsonInt = Annotated[int, BeforeValidator(_only_int)]


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: JsonInt = Field(ge=0, le=MAX_AMOUNT, description="minor units (fen for CNY)")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217 code")

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if not value.isascii() or not value.isupper() or pycountry.currencies.get(alpha_3=value) is None:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value


__all__ = ["MAX_AMOUNT", "JsonInt", "Money"]
