"""Ledger entries: signing, canonical form (RFC 8785), strict parsing, verification."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import entry as E
from ledger.entry import canonical, parse_entry, sign_entry, signed_message, verify_entry
from ledger.errors import BadSignatureError, MalformedError, UnknownKeyError
from tests.ledger.ledgertestutil import T0, signer

S = signer(1)
DATA = {"document_sha256": "ab" * 32, "amount": 12345, "parties": ["acct_1", "acct_2"], "ok": True, "none": None}


def make(**kw):
    args = {"type": "trade.settled", "subject": "order:ord_01", "actor": "acct_01", "data": DATA, "time": T0}
    args.update(kw)
    return sign_entry(S, **args)


def test_sign_produces_canonical_signed_entry():
    entry, leaf = make()
    assert leaf == rfc8785.dumps(entry)
    assert list(entry) == ["actor", "data", "subject", "time", "type", "v", "sig"]
    assert entry["time"] == "2026-11-27T06:42:00.123456Z" and entry["v"] == 1
    assert entry["sig"]["alg"] == "Ed25519" and entry["sig"]["kid"] == S.key_id.hex()
    unsigned = {k: v for k, v in entry.items() if k != "sig"}
    S.private_key.public_key().verify(base64.b64decode(entry["sig"]["value"]), rfc8785.dumps(unsigned))
    assert verify_entry(leaf, S.public_key, S.key_id) == entry
    assert verify_entry(leaf, S.private_key.public_key(), S.key_id.hex()) == entry
    assert parse_entry(leaf) == entry


def test_time_is_utc_with_microseconds():
    cet = timezone(timedelta(hours=1))
    entry, _ = make(time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=cet))
    assert entry["time"] == "2026-01-02T02:04:05.000000Z"
    with pytest.raises(MalformedError):
        make(time=datetime(2026, 1, 2))  # naive


@pytest.mark.parametrize(
    "kw",
    [
        {"type": "settled"},
        {"type": "Trade.settled"},
        {"subject": "order"},
        {"subject": "order:"},
        {"subject": "Order:x"},
        {"subject": "order:a b"},
        {"actor": ""},
        {"actor": "a b"},
        {"data": [1]},
        {"data": {"x": 1.5}},
        {"data": {"x": 2**53}},
        {"data": {1: "x"}},
        {"data": {"x": b"bytes"}},
        {"data": {"x": "y" * 70000}},
    ],
)
def test_sign_rejects_bad_fields(kw):
    with pytest.raises(MalformedError):
        make(**kw)


def test_tampering_is_detected():
    _, leaf = make()
    with pytest.raises(BadSignatureError):
        verify_entry(leaf.replace(b"12345", b"12346"), S.public_key, S.key_id)
    with pytest.raises(BadSignatureError):
        verify_entry(leaf, signer(2).public_key, S.key_id)
    with pytest.raises(UnknownKeyError):
        verify_entry(leaf, S.public_key, b"\x00\x00\x00\x00")


def test_sig_nested_in_data_does_not_confuse_the_verifier():
    entry, leaf = make()
    nested, leaf2 = make(data={**DATA, "sig": entry["sig"], "z": {"sig": entry["sig"]}})
    assert verify_entry(leaf2, S.public_key, S.key_id) == nested
    assert E.signed_bytes(leaf2, parse_entry(leaf2)) == signed_message(nested)


def reencode(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda leaf: leaf.replace(b'{"actor"', b'{ "actor"'),  # whitespace
        lambda leaf: leaf + b"\n",
        lambda leaf: leaf.replace(b'"v":1', b'"v":1.0'),  # float
        lambda leaf: leaf.replace(b'"v":1', b'"v":2'),
        lambda leaf: leaf.replace(b'"v":1', b'"v":true'),
        lambda leaf: leaf.replace(b'"amount":12345', b'"amount":1e5'),
        lambda leaf: leaf.replace(b'"amount":12345', b'"amount":NaN'),
        lambda leaf: leaf.replace(b'"amount":12345', b'"amount":9007199254740993'),
        lambda leaf: leaf.replace(b'"amount":12345', b'"amount":-0'),
        lambda leaf: leaf.replace(b'"acct_1"', b'"acct\\u005f1"'),  # needless escape
        lambda leaf: leaf.replace(b'"actor":"acct_01"', b'"actor":"acct_01","actor":"acct_01"'),
        lambda leaf: leaf.replace(b'"type":"trade.settled",', b""),  # missing field
        lambda leaf: leaf.replace(b'"v":1}', b'"v":1,"x":1}'),  # extra field
        lambda leaf: reencode(dict(reversed(list(json.loads(leaf).items())))),  # unsorted keys
        lambda leaf: leaf.replace(b'"alg":"Ed25519"', b'"alg":"ed25519"'),
        lambda leaf: leaf.replace(b'"time":"2026-11-27T06:42:00.123456Z"', b'"time":"2026-11-27T06:42:00Z"'),
        lambda leaf: leaf.replace(b'"time":"2026-11-27T06:42:00.123456Z"', b'"time":"2026-13-27T06:42:00.123456Z"'),
        lambda leaf: leaf.replace(b'"subject":"order:ord_01"', b'"subject":"ord_01"'),
        lambda leaf: b"[" + leaf + b"]",
        lambda leaf: leaf[:-1],
        lambda leaf: leaf.replace(b"acct_01", b"acct_\xff1"),  # invalid UTF-8
        lambda leaf: leaf.decode().encode("utf-16"),
    ],
)
def test_parse_rejects_non_canonical_or_malformed(mutate):
    _, leaf = make()
    with pytest.raises(MalformedError):
        parse_entry(mutate(leaf))


def test_parse_rejects_bad_sig_member():
    entry, _ = make()
    for sig in (
        {**entry["sig"], "kid": "ABCDEF01"},
        {**entry["sig"], "kid": "abc"},
        {**entry["sig"], "value": entry["sig"]["value"][:-4]},
        {**entry["sig"], "value": "!" * 88},
        {"alg": "Ed25519", "kid": entry["sig"]["kid"]},
        "sig",
    ):
        with pytest.raises(MalformedError):
            parse_entry(rfc8785.dumps({**entry, "sig": sig}))


def test_parse_rejects_oversize_and_deep_nesting():
    with pytest.raises(MalformedError):
        parse_entry(b"{" + b" " * 70000 + b"}")
    with pytest.raises(MalformedError):
        parse_entry(b"[" * 30000 + b"]" * 30000)


def test_non_ascii_entries_are_canonical_too():
    entry, leaf = make(data={"name": "Zoë ☃", "\U0001f600": 1, "\ue000": 2, "ctl": "\x01\n\x7f"})
    assert leaf == rfc8785.dumps(entry)
    # UTF-16 order puts the astral key (surrogates D83D…) before U+E000, unlike code point order.
    assert leaf.index("\U0001f600".encode()) < leaf.index("\ue000".encode())
    assert verify_entry(leaf, S.public_key, S.key_id) == entry


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(codec="utf-8"), max_size=6), children, max_size=4),
    max_leaves=20,
)
ascii_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(st.characters(max_codepoint=127)),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, ascii_values))
def test_canonical_equals_rfc8785(value):
    assert canonical(value) == rfc8785.dumps(value)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(st.characters(max_codepoint=127), min_size=1, max_size=6), ascii_values, max_size=5))
def test_parse_accepts_exactly_the_canonical_form(data):
    entry, leaf = make(data=data)
    assert leaf == rfc8785.dumps(entry)
    assert parse_entry(leaf) == entry
    assert E.signed_bytes(leaf, entry) == signed_message(entry) == rfc8785.dumps(
        {k: v for k, v in entry.items() if k != "sig"}
    )
    pretty = json.dumps(entry, indent=1).encode()
    if pretty != leaf:
        with pytest.raises(MalformedError):
            parse_entry(pretty)


# Keys and strings from every plane, control characters and lone surrogates included.
_TEXT = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=30)


def _either(fn, value):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(value))
    except Exception as exc:  # noqa: BLE001 - compared: the same refusal
        return ("refused", type(exc))


@settings(max_examples=600, deadline=None)
@given(_JSON)
def test_jcs_is_rfc8785_on_any_value(value) -> None:
    """The C encoder's shortcut gives exactly the bytes rfc8785 gives, or refuses as it does."""
    assert _either(E.jcs, value) == _either(rfc8785.dumps, value)


@pytest.mark.parametrize("value", [
    {"区": "福田", "b": ["南山", 1, None, True]},  # non-ASCII through the C encoder
    {"\ue000": 1, "\U0001f600": 2},  # key order: UTF-16 puts the astral key first
    {"s": "\x00\x1f\x7f\u2028\"\\"},  # escapes
    {"n": 2**53},  # beyond the safe range
    {"x": 1.5e21},  # floats
    {"lone": "\ud800"},
])
def test_jcs_on_the_edges(value) -> None:
    assert _either(E.jcs, value) == _either(rfc8785.dumps, value)
