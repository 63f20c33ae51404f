"""Money (docs/API.md "Conventions"): ``{"amount": 12345, "currency": "CNY"}``, the amount
an integer of minor units (fen). Never a float: ``12.5`` or ``"12"`` is refused, not rounded.

People read money in its major unit with the currency named: ``human(50000, "CNY")`` is
``"500.00 CNY"``. Every error ``detail`` and page that prints an amount goes through
``human`` (integer arithmetic only: no float ever touches an amount), so a reader
never has to guess whether ``500`` meant yuan or fen.
"""

from typing import Annotated, Any

import pycountry
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_AMOUNT = 10**15  # minor units; far beyond any trade, well inside a signed 64-bit column

# ISO 4217 minor-unit exponents other than 2, the exponent of CNY, USD, EUR and most
# others: currencies without minor units, and the few with three decimals.
EXPONENTS: dict[str, int] = {
    **dict.fromkeys(("JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def exponent(currency: str) -> int:
    """How many decimal places the minor unit of ``currency`` is (2 unless listed)."""
    return EXPONENTS.get(currency, 2)


def decimal(amount: int, currency: str, *, grouped: bool = False) -> str:
    """Minor units as the exact decimal of the major unit: 50000 CNY → ``"500.00"``,
    500 JPY → ``"500"``, -5 CNY → ``"-0.05"``; ``grouped``: thousands separated by
    commas (``"15,000.00"``), for pages."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"an amount is an integer of minor units, not {type(amount).__name__}")
    places = exponent(currency)
    whole, part = divmod(abs(amount), 10**places)
    sign = "-" if amount < 0 else ""
    digits = f"{whole:,}" if grouped else str(whole)
    return f"{sign}{digits}.{part:0{places}d}" if places else f"{sign}{digits}"


def human(amount: int, currency: str, *, grouped: bool = False) -> str:
    """Money as people read it, its unit named: ``human(50000, "CNY") == "500.00 CNY"``
    (``grouped``: ``"15,000.00 CNY"``)."""
    return f"{decimal(amount, currency, grouped=grouped)} {currency}"


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

    def human(self) -> str:
        """``"500.00 CNY"`` (see ``human``)."""
        return human(self.amount, self.currency)


__all__ = ["EXPONENTS", "MAX_AMOUNT", "JsonInt", "Money", "decimal", "exponent", "human"]
