"""A party's signature over a document it signed (``market.core.signing``), checked
under one of its account's registered, unrevoked Ed25519 keys."""

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import AccountKey
from market.core.errors import Unprocessable
from market.core.signing import decode_b64


async def verify_party_signature(
    session: AsyncSession, account_id: str, key_id: str, signature_b64: str, message: bytes
) -> AccountKey:
    """The signature verifies under an unrevoked key of ``account_id``; returns the key."""
    key = await session.get(AccountKey, key_id)
    if key is None or key.account_id != account_id:
        raise Unprocessable(f"{key_id} is not a key of account {account_id}", kind="unknown-key")
    if key.revoked_at is not None:
        raise Unprocessable(f"key {key_id} was revoked", kind="revoked-key")
    signature = decode_b64(signature_b64, "signature", "bad-signature")
    if len(signature) != 64:
        raise Unprocessable(f"an Ed25519 signature is 64 bytes, got {len(signature)}", kind="bad-signature")
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key)).verify(signature, message)
    except InvalidSignature:
        raise Unprocessable(f"the signature does not verify under key {key_id}", kind="bad-signature") from None
    return key
