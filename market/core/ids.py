"""Opaque, time-ordered ids with a type prefix (``acct_``, ``key_``, ``tok_`` ...).

48 bits of milliseconds then 80 random bits, in Crockford base32 (26 characters), so
ids sort by creation time; list cursors rely on that.
"""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
PREFIXES = frozenset({"acct", "dng", "dtp", "key", "tok", "ast", "lst", "ord", "dsp", "obj", "act", "alr", "pln", "pay", "rev", "trf",
                      "enr", "ses", "sig", "evt", "ntf", "whk", "qry"})


# Two characters per 10 bits: 13 look-ups where a loop made 26 shifts and appends.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(120, -1, -10)  # 26 characters = 130 bits, the top two always 0


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return f"{prefix}_{''.join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])}"
