"""What a party runs on its own machine (``market client ...``): make an Ed25519 key,
sign the bytes the API hands out, and make up a well-formed credit code for a trial.

Every failure is a ``ClientError`` whose message says what to do; the CLI prints it
on one line. Nothing here talks to the market or its database. The cryptography
library is imported by the functions that use keys: a credit code needs none of it.
"""

import base64
import binascii
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from market.accounts.uscc import ALPHABET, check_character

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

MAX_SIGNING_BYTES = 100_000  # the API's limit on signing_bytes (base64 text)


class ClientError(Exception):
    """A refusal with a message that says what to pass or do instead."""


def keygen(out: Path, *, force: bool = False) -> str:
    """Write a new Ed25519 private key to ``out`` (PEM PKCS#8, mode 0600, parents 0700).

    Refuses to replace an existing file unless ``force``. Returns the public key as
    the API takes it: base64 of the 32 raw bytes.
    """
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if out.is_dir():
        raise ClientError(f"{out} is a directory; give --out a file name, e.g. {out / 'provider.pem'}")
    if out.exists() and not force:
        raise ClientError(f"{out} already exists; it may be the only copy of a registered key. "
                          "Choose another --out, or pass --force to replace it")
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    # A new name, then rename: a half-written key never takes the old one's place.
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        if force:
            os.replace(tmp, out)
        else:
            os.link(tmp, out)  # fails if ``out`` appeared meanwhile
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise ClientError(f"{out} already exists; choose another --out, or pass --force to replace it") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return base64.b64encode(key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()


def load_key(path: Path) -> "Ed25519PrivateKey":
    """An Ed25519 private key from a PEM file written by ``keygen``."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        key = ser.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ClientError(f"{path} is not an unencrypted PEM private key; make one with 'market client keygen'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ClientError(f"{path} is not an Ed25519 key; make one with 'market client keygen'")
    return key


_HOW = "pass the signing_bytes string of the API's response as it is (e.g. jq -r .signing_bytes)"


def signing_message(text: str) -> bytes:
    """Decode SIGNING_BYTES, refusing anything that is not a document the API handed out.

    The API hands out base64 of a canonical JSON object; an empty string, ``null`` (what
    ``jq -r`` prints for a missing field) or any other text is a mistake upstream
    (usually an error response), and signing it would only fail later, at the market.
    """
    text = text.strip()
    if not text or text == "null":
        shown = "empty" if not text else "null"
        raise ClientError(f"SIGNING_BYTES is {shown}: the request that should have returned it probably failed "
                          f"(look at its response); {_HOW}")
    if len(text) > MAX_SIGNING_BYTES:
        raise ClientError(f"SIGNING_BYTES is {len(text)} characters, more than the API ever hands out; {_HOW}")
    try:
        message = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(f"SIGNING_BYTES is not standard base64; {_HOW}") from None
    try:
        document = json.loads(message)
    except (UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict):
        raise ClientError(f"SIGNING_BYTES does not decode to a JSON document, so it is not what the API hands "
                          f"out to sign; {_HOW}")
    return message


def sign(key_path: Path, text: str) -> str:
    """The base64 Ed25519 signature over the decoded SIGNING_BYTES."""
    message = signing_message(text)
    return base64.b64encode(load_key(key_path).sign(message)).decode()


def organization_code_check(body8: str) -> str:
    """GB 11714-1997 check character of an 8-character organization code body."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c, 36) * w for c, w in zip(body8, weights, strict=True))
    value = 11 - total % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def trial_uscc(division: str = "440300") -> str:
    """A random, well-formed unified social credit code (GB 32100-2015) for trying the market.

    ``91`` (an enterprise registered with market regulation), the administrative
    division (default Shenzhen), a random organization code with its GB 11714 check
    character, and the GB 32100 check character. Random, so a walkthrough run twice
    never collides with itself; not a real company's code.
    """
    if len(division) != 6 or not division.isdigit():
        raise ClientError(f"the administrative division is 6 digits (e.g. 440300), got {division!r}")
    body = "".join(secrets.choice(ALPHABET) for _ in range(8))
    first17 = "91" + division + body + organization_code_check(body)
    return first17 + check_character(first17)


__all__ = ["ClientError", "keygen", "load_key", "organization_code_check", "sign", "signing_message", "trial_uscc"]
