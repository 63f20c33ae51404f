"""Opaque, time-ordered ids with a type prefix (``acct_``, ``key_``, ``tok_`` ...).

48 bits of milliseconds then 80 random bits, in Crockford base32 (26 characters), so
ids sort by creation time; list cursors rely on that.
"""

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
PREFIXES = frozenset({"acct", "dng", "dtp", "key", "tok", "ast", "lst", "ord", "dsp", "obj", "act", "alr", "pln", "pay", "rev", "trf",
                      "enr", "ses", "sig", "evt", "ntf", "whk", "qry"})


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"

