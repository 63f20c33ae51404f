"""Unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters from a 31-character alphabet (digits and capitals without I, O, S, V, Z);
the 18th is a check character over the first 17 with weights 3^i mod 31.
"""

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    """The check character for 17 valid characters."""
    if len(first17) != 17 or any(c not in _VALUE for c in first17):
        raise ValueError("want 17 characters of the GB 32100 alphabet")
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate(code: str) -> str:
    """Return the code in upper case, or raise ``ValueError`` saying what is wrong."""
    code = code.strip().upper()
    if len(code) != 18:
        raise ValueError(f"a unified social credit code has 18 characters, got {len(code)}")
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        raise ValueError(f"characters not allowed in a unified social credit code: {''.join(bad)}")
    want = check_character(code[:17])
    if code[17] != want:
        raise ValueError(f"check character is {code[17]}, want {want} (GB 32100-2015)")
    return code
