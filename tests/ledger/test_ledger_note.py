"""C2SP signed-note, tlog-checkpoint and tlog-cosignature/v1."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ledger.errors import BadSignatureError, MalformedError, UnknownKeyError, VerificationError
from ledger.note import (
    ALG_COSIGNATURE,
    Checkpoint,
    CosignatureSigner,
    Signer,
    Verifier,
    key_id,
    make_vkey,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
)
from tests.ledger.ledgertestutil import key

EXAMPLE_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
EXAMPLE_NOTE = (Path(__file__).parent / "vectors" / "note_example.txt").read_text(encoding="utf-8")

LOG = Signer("log.example/a", key(1))
OTHER = Signer("log.example/a", key(2))  # same name, another key
STRANGER = Signer("someone.example", key(3))
WITNESS = CosignatureSigner("witness.example/w1", key(4))
V_LOG = Verifier.from_vkey(LOG.vkey)
V_WITNESS = Verifier.from_vkey(WITNESS.vkey)
CP = Checkpoint("log.example/a", 12345, bytes(range(32)))


# --- known answer --------------------------------------------------------------------


def test_c2sp_example_note_verifies():
    v = Verifier.from_vkey(EXAMPLE_VKEY)
    assert v.name == "example.com/foo" and v.key_id.hex() == "530d903a" and v.vkey == EXAMPLE_VKEY
    note = open_note(EXAMPLE_NOTE, [v])
    assert note.text == "This is an example message.\n"
    assert [s.name for s in note.verified_by] == ["example.com/foo"]
    assert open_note(EXAMPLE_NOTE.encode(), [v]).text == note.text


def test_example_note_with_tampered_text_or_signature_fails():
    v = Verifier.from_vkey(EXAMPLE_VKEY)
    with pytest.raises(BadSignatureError):
        open_note(EXAMPLE_NOTE.replace("example", "exemple", 1), [v])
    line = EXAMPLE_NOTE.rstrip("\n").split("\n")[-1]
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[10] ^= 1
    bad = EXAMPLE_NOTE.replace(line.split(" ")[2], base64.b64encode(bytes(raw)).decode())
    with pytest.raises(BadSignatureError):
        open_note(bad, [v])


def test_key_ids_and_vkeys():
    pub = LOG.public_key
    assert LOG.key_id == key_id("log.example/a", pub) == V_LOG.key_id
    assert LOG.vkey == make_vkey("log.example/a", pub)
    assert WITNESS.key_id == key_id("witness.example/w1", WITNESS.public_key, ALG_COSIGNATURE)
    assert WITNESS.key_id != key_id("witness.example/w1", WITNESS.public_key)
    assert V_WITNESS.alg == ALG_COSIGNATURE
    assert base64.b64decode(WITNESS.vkey.split("+")[2]) == b"\x04" + WITNESS.public_key


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "example.com/foo+530d903a",
        "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong key id
        "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k=",
        "example.com/foo+530d903a+A2kyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # alg 0x03
        "exa mple+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "a+b+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_bad_vkeys_rejected(vkey):
    with pytest.raises(MalformedError):
        Verifier.from_vkey(vkey)


# --- signed notes --------------------------------------------------------------------


def test_sign_and_open():
    note = LOG.sign_note("hello\nworld\n")
    assert note == "hello\nworld\n\n— log.example/a " + note.split(" ")[-1]
    opened = open_note(note, [V_LOG])
    assert opened.text == "hello\nworld\n" and len(opened.verified_by) == 1


def test_unknown_signatures_are_ignored_but_one_known_is_needed():
    note = LOG.sign_note("text\n") + STRANGER.signature_line("text\n")
    opened = open_note(note, [V_LOG])
    assert [s.name for s in opened.sigs] == ["log.example/a", "someone.example"]
    assert [s.name for s in opened.verified_by] == ["log.example/a"]
    with pytest.raises(UnknownKeyError):  # only unknown keys
        open_note(STRANGER.sign_note("text\n"), [V_LOG])
    with pytest.raises(UnknownKeyError):  # same name, other key id: unknown
        open_note(OTHER.sign_note("text\n"), [V_LOG])


def test_failing_known_signature_rejects_note():
    good = LOG.sign_note("text\n")
    bad_line = "\u2014 log.example/a " + base64.b64encode(LOG.key_id + bytes(64)).decode() + "\n"
    with pytest.raises(BadSignatureError):
        open_note("text\n\n" + bad_line + STRANGER.signature_line("text\n"), [V_LOG])
    with pytest.raises(BadSignatureError):  # after an unknown one
        open_note(STRANGER.sign_note("text\n") + bad_line, [V_LOG])
    with pytest.raises(BadSignatureError):  # a good known signature does not excuse a bad known one
        open_note(good + STRANGER.signature_line("text\n") + OTHER.signature_line("other\n"),
                  [V_LOG, Verifier.from_vkey(OTHER.vkey)])


def sigline(text: str = "text\n") -> str:
    return LOG.signature_line(text)


@pytest.mark.parametrize(
    "note",
    [
        "text\n" + sigline(),  # no blank line
        "text\n\n" + sigline().replace("\u2014", "-"),  # ASCII dash
        "text\n\n" + sigline().replace("\u2014 ", "\u2014"),  # no space after the dash
        "text\n\n" + sigline().replace("\u2014 ", "\u2014  "),  # two spaces
        "text\n\n" + sigline().replace("\u2014 ", "\u2013 "),  # en dash
        "text\n\n" + sigline().rstrip("\n"),  # no final newline
        "text\n\n" + sigline() + "junk",  # trailing junk
        "text\n\n" + sigline() + "\n",  # trailing blank line
        "text\n\n" + sigline()[:-5] + "!!!=\n",  # bad base64
        "text\n\n" + sigline()[:-2] + "\n",  # truncated base64 (bad padding)
        "text\n\n" + sigline()[:-1] + " \n",  # trailing space
        "text\n\n\u2014 log.example/a\n",  # no signature
        "text\n\n\u2014 log.example/a AAAA\n",  # payload too short
        "text\n\n",
        "text",
        "",
        "te\x01xt\n\n" + sigline("text\n"),  # control character
        "text\r\n\n" + sigline(),
        "text\n\n" + sigline() * 101,  # too many signatures
    ],
)
def test_malformed_notes_rejected(note):
    with pytest.raises(MalformedError):
        open_note(note, [V_LOG])


def test_size_limit_and_utf8():
    with pytest.raises(MalformedError):
        open_note(("x" * (1 << 20)) + "\n\n" + sigline(), [V_LOG])
    with pytest.raises(MalformedError):
        open_note(b"text\xff\n\n" + sigline().encode(), [V_LOG])


def test_non_canonical_base64_rejected():
    line = sigline()
    b64 = line.split(" ")[2].rstrip("\n")
    raw = base64.b64decode(b64)  # 68 bytes: one padding char, two spare bits
    last = b64[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 1]  # same decoded bytes, different spare bits
    assert base64.b64decode(b64[:-2] + twin + "=") == raw
    with pytest.raises(MalformedError):
        open_note("text\n\n" + line.replace(b64, b64[:-2] + twin + "="), [V_LOG])


def test_at_most_100_signatures_are_accepted():
    note = "text\n\n" + sigline() + STRANGER.signature_line("text\n") * 99
    assert len(open_note(note, [V_LOG]).verified_by) == 1


def test_signer_rejects_bad_text():
    with pytest.raises(MalformedError):
        LOG.sign_note("no final newline")
    with pytest.raises(MalformedError):
        LOG.sign_note("tab\there\n")
    with pytest.raises(MalformedError):
        Signer("bad name", key(1))
    with pytest.raises(MalformedError):
        Signer("a+b", key(1))


# --- checkpoints ---------------------------------------------------------------------


def test_checkpoint_body_and_round_trip():
    body = CP.body()
    assert body == "log.example/a\n12345\n" + base64.b64encode(bytes(range(32))).decode() + "\n"
    assert parse_checkpoint(body) == CP
    note = sign_checkpoint(LOG, CP)
    cp, opened = open_checkpoint(note, V_LOG)
    assert cp == CP and opened.text == body
    ext = Checkpoint("log.example/a", 1, bytes(32), ("extension line",))
    assert parse_checkpoint(ext.body()) == ext


@pytest.mark.parametrize(
    "body",
    [
        "log\n007\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n+1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n1 \nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n١\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # non-ASCII digit
        "log\n99999999999999999999\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",  # unpadded
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",  # 31 bytes
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # 34 bytes
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",  # non-canonical
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  # no final newline
        "log\n1\n",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",  # empty origin
        "log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",  # empty extension line
    ],
)
def test_bad_checkpoints_rejected(body):
    with pytest.raises(MalformedError):
        parse_checkpoint(body)


def test_open_checkpoint_requires_the_log_key_and_origin():
    with pytest.raises(UnknownKeyError):
        open_checkpoint(sign_checkpoint(OTHER, CP), V_LOG)
    with pytest.raises(UnknownKeyError):  # a witness's cosignature alone is not the log's signature
        note = "log.example/a\n1\n" + base64.b64encode(bytes(32)).decode() + "\n"
        open_checkpoint(note + "\n" + WITNESS.signature_line(note, 5), V_LOG, [V_WITNESS])
    elsewhere = Checkpoint("log.example/b", 1, bytes(32))
    with pytest.raises(VerificationError):
        open_checkpoint(sign_checkpoint(LOG, elsewhere), V_LOG)
    with pytest.raises(MalformedError):
        open_checkpoint(LOG.sign_note("not a checkpoint\n"), V_LOG)


# --- cosignatures --------------------------------------------------------------------


def test_cosignature_round_trip():
    note = sign_checkpoint(LOG, CP)
    line = WITNESS.signature_line(CP.body(), 1_800_000_000)
    payload = base64.b64decode(line.split(" ")[2])
    assert payload[:4] == WITNESS.key_id and int.from_bytes(payload[4:12], "big") == 1_800_000_000
    assert len(payload) == 4 + 8 + 64
    cp, opened = open_checkpoint(note + line, V_LOG, [V_WITNESS])
    assert cp == CP
    cosig = [s for s in opened.verified_by if s.name == WITNESS.name]
    assert len(cosig) == 1 and cosig[0].timestamp == 1_800_000_000
    # The signed message is "cosignature/v1\ntime <t>\n" + body.
    msg = b"cosignature/v1\ntime 1800000000\n" + CP.body().encode()
    V_WITNESS.ed25519.verify(payload[12:], msg)


def test_tampered_cosignature_rejected():
    note = sign_checkpoint(LOG, CP)
    line = WITNESS.signature_line(CP.body(), 1_800_000_000)
    payload = bytearray(base64.b64decode(line.split(" ")[2]))
    payload[11] ^= 1  # the timestamp
    bad = line.replace(line.split(" ")[2].rstrip("\n"), base64.b64encode(bytes(payload)).decode())
    with pytest.raises(BadSignatureError):
        open_checkpoint(note + bad, V_LOG, [V_WITNESS])
    other_body = Checkpoint("log.example/a", 12346, bytes(range(32))).body()
    with pytest.raises(BadSignatureError):  # a cosignature of another checkpoint
        open_checkpoint(note + WITNESS.signature_line(other_body, 5), V_LOG, [V_WITNESS])
    # Unknown to a verifier that does not know the witness: ignored.
    cp, opened = open_checkpoint(note + bad, V_LOG)
    assert [s.name for s in opened.verified_by] == [LOG.name]


def test_cosigner_signs_only_checkpoints():
    with pytest.raises(MalformedError):
        WITNESS.signature_line("hello\n", 1)
    with pytest.raises(MalformedError):
        WITNESS.signature_line(CP.body(), -1)
