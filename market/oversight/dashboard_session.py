"""Dashboard sessions (docs/API.md "Oversight" ``GET /oversight``; "Regulators are not the
operator's to make"): a regulator signs in by signing a challenge in the browser with
the key its authority enrolled, and signing out ends the session on the server.

Challenge. The sign-in page carries the canonical bytes of ``{"type":
"oversight-sign-in", "v": 1, "market", "origin", "nonce"}``; the nonce is the one in the
page's sealed pre-session cookie, so a challenge answers for this browser and this
origin only. The page signs it with WebCrypto Ed25519 from the key file the regulator
opens (the key never leaves the page) and posts the public key and the signature. The
market finds the unrevoked key with that public key, enrolled under the configured
authority, of an unsuspended regulator, and verifies the signature.

Session. A row in ``dashboard_sessions``: the cookie holds 32 random bytes (base64url)
whose SHA-256 is the row's ``id_sha256``; nothing else is in the cookie. A session ends
at sign-out (``ended_at``), after ``SESSION_HOURS``, when its key is revoked, or when
the account is suspended or no longer a regulator: every request reads the row, the
key and the account again (``lookup`` tells the last case apart, so a page answers
``403`` to it). Expired and ended rows are deleted at the next sign-in.
"""

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.enrollment import EnrollmentError, authority_id
from market.accounts.models import Account, AccountKey, RegulatorEnrollment
from market.accounts.schemas import Role
from market.core.ids import new_id
from market.oversight.models import DashboardSession
from market.web.auth import Caller
from market.web.credentials import AccountSnapshot

__all__ = ["SESSION_HOURS", "SignedIn", "challenge", "current", "end", "lookup", "sign_in"]

SESSION_HOURS = 8


@dataclass(frozen=True)
class SignedIn:
    caller: Caller
    csrf: str
    key_id: str
    expires: datetime
    refused: str | None = None  # why the account may no longer use the dashboard (``refusal``)


def challenge(market: str, origin: str, nonce: str) -> bytes:
    """The bytes the page signs to sign in."""
    return rfc8785.dumps({"type": "oversight-sign-in", "v": 1, "market": market, "origin": origin, "nonce": nonce})


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def refusal(account: Account) -> str | None:
    """Why this account may not use the dashboard (None: it may)."""
    if Role.regulator.value not in account.roles.split(","):
        return "not-regulator"
    if account.suspended:
        return "suspended"
    return None


def _authority(settings: Any) -> str:
    try:
        return authority_id(settings.regulator_authority)
    except EnrollmentError:
        return ""


async def sign_in(db: AsyncSession, settings: Any, now: datetime, message: bytes, public_key: Any,
                  signature: Any) -> tuple[str, str] | str:
    """Open a session for the regulator whose enrolled key signed ``message``: returns
    ``(cookie value, csrf)``, or the reason for refusing (``bad-key``, ``not-regulator``,
    ``suspended``). Does not commit."""
    try:
        raw_signature = base64.b64decode(signature, validate=True) if isinstance(signature, str) else b""
        raw_key = base64.b64decode(public_key, validate=True) if isinstance(public_key, str) else b""
    except (binascii.Error, ValueError):
        return "bad-key"
    if len(raw_key) != 32 or len(raw_signature) != 64:
        return "bad-key"
    authority = _authority(settings)
    row = (await db.exec(
        select(AccountKey, Account)
        .join(Account, col(Account.id) == col(AccountKey.account_id))
        .join(RegulatorEnrollment, col(RegulatorEnrollment.key_id) == col(AccountKey.id))
        .where(col(AccountKey.public_key) == base64.b64encode(raw_key).decode(),
               col(AccountKey.revoked_at).is_(None),
               col(RegulatorEnrollment.authority) == authority)
    )).first()
    if row is None or not authority:
        return "bad-key"
    key, account = row
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, message)
    except InvalidSignature:
        return "bad-key"
    why = refusal(account)
    if why is not None:
        return why
    await db.execute(delete(DashboardSession).where(or_(
        col(DashboardSession.expires_at) < now, col(DashboardSession.ended_at).is_not(None))))
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db.add(DashboardSession(id=new_id("ses"), id_sha256=_digest(secret), account_id=account.id, key_id=key.id,
                            csrf=csrf, created_at=now, expires_at=now + timedelta(hours=SESSION_HOURS)))
    await db.flush()
    return secret, csrf


async def lookup(db: AsyncSession, cookie: str | None, now: datetime) -> SignedIn | None:
    """The unended, unexpired session the cookie names, signed in with a key still
    valid, or None; ``refused`` says when its account may no longer use the dashboard
    (suspended, or not a regulator), so a page can answer 403 rather than sign-in."""
    if not cookie or len(cookie) > 100:
        return None
    row = (await db.exec(
        select(DashboardSession, Account, AccountKey)
        .join(Account, col(Account.id) == col(DashboardSession.account_id))
        .join(AccountKey, col(AccountKey.id) == col(DashboardSession.key_id))
        .where(col(DashboardSession.id_sha256) == _digest(cookie))
    )).first()
    if row is None:
        return None
    session, account, key = row
    if session.ended_at is not None or session.expires_at <= now or key.revoked_at is not None:
        return None
    caller = Caller(account=AccountSnapshot.of(account), token_id=session.id)
    return SignedIn(caller=caller, csrf=session.csrf, key_id=session.key_id, expires=session.expires_at,
                    refused=refusal(account))


async def current(db: AsyncSession, cookie: str | None, now: datetime) -> SignedIn | None:
    """The live session the cookie names, of an account that may use the dashboard, or None."""
    found = await lookup(db, cookie, now)
    return found if found is not None and found.refused is None else None


async def end(db: AsyncSession, cookie: str | None, now: datetime) -> None:
    """End the session the cookie names (if any). Does not commit."""
    if not cookie or len(cookie) > 100:
        return
    await db.execute(update(DashboardSession).where(
        col(DashboardSession.id_sha256) == _digest(cookie), col(DashboardSession.ended_at).is_(None))
        .values(ended_at=now))
