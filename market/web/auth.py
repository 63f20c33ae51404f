"""Bearer tokens and the caller of a request.

Tokens are opaque (``mkt_`` + 256 random bits), shown once, stored only as SHA-256.
A missing, unknown or revoked token is 401. Role checks are 403. Object-level checks
live in each domain's service, which answers 404 for what the caller may not see.

Accounts that are suspended or whose KYC was rejected may still authenticate and read
(their own data, by the ordinary visibility rules) but may not change anything: any
non-read request from them is 403 ``account-inactive``.

Authentication costs no database query once a token has been seen: each process
remembers valid tokens with a snapshot of their account (``market.web.credentials``; how
a revocation or an account change reaches every process before the next request is
``market.core.memo``'s contract). ``last_used_at`` is written at most once a minute per token, in a
short transaction of its own (never from a read transaction, which on SQLite would
have to upgrade its lock): writing requests wait for it, reads at most 50 ms, after
which it completes in the background, so a read never queues behind the write lock.
"""

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from litestar import Request
from sqlalchemy import update
from sqlmodel import col, select

from market.accounts.models import Account, ApiToken
from market.accounts.schemas import AccountStatus, Role
from market.core.db import table_of
from market.core.errors import Forbidden, NotAuthenticated
from market.core.logs import log
from market.core.services import Services
from market.core.types import utcnow
from market.web.credentials import TOPIC, AccountSnapshot, Credential, CredentialCache

TOKEN_PREFIX = "mkt_"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_LAST_USED_GRANULARITY = timedelta(minutes=1)
_READ_TOUCH_WAIT = 0.05  # seconds


# A route handler with this in its ``opt`` is open to suspended and rejected accounts
# too: revoking one's own key or token only takes power away, and a leaked credential
# must always be shut.
OPEN_TO_INACTIVE = "open_to_inactive_accounts"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """The authenticated party of one request. ``account`` is an immutable snapshot
    (see ``market.web.credentials``), current as of this request."""

    account: AccountSnapshot
    token_id: str

    @property
    def id(self) -> str:
        return self.account.id

    def has(self, role: Role) -> bool:
        return role in self.account.role_set

    def require(self, *roles: Role) -> None:
        """403 unless the caller holds one of ``roles``."""
        if not any(self.has(r) for r in roles):
            names = " or ".join(r.value for r in roles)
            raise Forbidden(f"this needs the {names} role", kind="wrong-role")

    def require_verified(self) -> None:
        if self.account.status != AccountStatus.verified:
            raise Forbidden(
                f"the account is {self.account.status}; this needs a KYC-verified account",
                kind="account-not-verified",
            )

    @property
    def is_staff(self) -> bool:
        return self.has(Role.operator) or self.has(Role.regulator)


_MAX_TOKEN_LENGTH = 128  # ours are 47 characters; anything much longer was never issued
# Where the rate limiter leaves the credential it resolved for this request (ASGI scope).
RESOLVED = "market.credential"


def bearer_token(header: str | None) -> str | None:
    """The token of ``Bearer <token>``, or None for anything else (absent, empty,
    blank, another scheme, no token). Authentication refuses the latter with 401; the
    rate limits count such a request as anonymous (``market.web.ratelimit``)."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        return None  # an empty header is no header (and is counted as anonymous by the limits)
    token = bearer_token(header)
    if token is None:
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'", kind="bad-token")
    return token


async def resolve(services: Services, token: str) -> Credential | None:
    """The credential of ``token``, or None when it is unknown or revoked: from this
    process's memory, else one query (which fills the memory)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN_LENGTH:
        return None  # never issued: no query
    token_hash = hash_token(token)
    cache: CredentialCache = services.credentials
    credential = cache.get(token_hash)
    if credential is None:
        credential = await _load(services, cache, token_hash)
    return credential


async def authenticate(request: Request) -> Caller | None:
    """The caller, or None when no token was sent. A bad or revoked token is always 401.

    On PostgreSQL the memory of tokens is first checked against the credentials
    change counter, read after this request began (``market.core.listener.PgListener.change_epochs``): a
    revocation committed by any process before then is seen, whether or not its
    NOTIFY has arrived yet."""
    token = _bearer(request)
    if token is None:
        return None
    services: Services = request.app.state.services
    cache: CredentialCache = services.credentials
    listener = services.change_listener
    if listener is not None:
        try:
            epochs = await listener.change_epochs()
        except Exception as exc:  # noqa: BLE001 - then nothing remembered is trusted
            log.warning("could not read the change counter; reading tokens from the database",
                        error=type(exc).__name__)
            epochs = None
        epoch = epochs.get(TOPIC) if epochs is not None else None
        if epoch is None:
            cache.invalidate()  # no counter (listener down, or no row): trust nothing remembered
        else:
            cache.validate(epoch)
    # (token, credential, generation), put there by the rate limiter
    resolved = cast("tuple[str, Credential | None, int] | None", request.scope.get(RESOLVED))
    if resolved is not None and resolved[0] == token and resolved[2] == cache.generation:
        credential = resolved[1]  # looked up moments ago by the rate limiter, and still current
    else:
        credential = await resolve(services, token)
    if credential is None:
        raise NotAuthenticated("the token is unknown or revoked", kind="bad-token")
    account = credential.account
    if request.method not in _READS and (account.suspended or account.status == AccountStatus.rejected) \
            and not request.route_handler.opt.get(OPEN_TO_INACTIVE):
        state_name = "suspended" if account.suspended else "rejected"
        raise Forbidden(f"the account is {state_name} and may only read", kind="account-inactive")
    now = utcnow()
    if credential.last_used_at is None or now - credential.last_used_at > _LAST_USED_GRANULARITY:
        credential.last_used_at = now
        touch = _in_background(services, _touch(services, credential.token_id, now))
        # Writes wait for it; a read waits briefly (so that what it shows includes this
        # use, as a rule) but never for long behind another transaction's write lock.
        await asyncio.wait({touch}, timeout=_READ_TOUCH_WAIT if request.method in _READS else None)
    return Caller(account=account, token_id=credential.token_id)


async def _load(services: Services, cache: CredentialCache, token_hash: str) -> Credential | None:
    ticket = cache.ticket()
    async with services.read_sessionmaker() as session:
        row = (
            await session.exec(
                select(col(ApiToken.id), col(ApiToken.revoked_at), col(ApiToken.last_used_at), Account)
                .join(Account, col(Account.id) == col(ApiToken.account_id))
                .where(col(ApiToken.token_hash) == token_hash)
            )
        ).first()
    if row is None or row[1] is not None:
        return None
    credential = Credential(token_id=row[0], account=AccountSnapshot.of(row[3]), last_used_at=row[2])
    cache.put(token_hash, credential, ticket)
    return credential


async def _touch(services: Services, token_id: str, now: datetime) -> None:
    """Write ``last_used_at`` on a connection of its own (never a read transaction, so
    SQLite never has to upgrade a reader's lock); only this column changes, which the
    credential caches ignore."""
    table = table_of(ApiToken)
    async with services.engine.begin() as conn:
        await conn.execute(update(table).where(table.c.id == token_id).values(last_used_at=now))


def _in_background(services: Services, work: Any) -> "asyncio.Task[None]":
    # Tracked so that shutdown can finish them; not cancelled when the request ends.
    task = asyncio.create_task(work)
    services.touches.add(task)
    task.add_done_callback(_touch_done(services))
    return task


def _touch_done(services: Services) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        services.touches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not record a token's last use", error=type(task.exception()).__name__)

    return done


async def provide_caller(request: Request) -> Caller:
    caller = await authenticate(request)
    if caller is None:
        raise NotAuthenticated("this needs 'Authorization: Bearer <token>'", kind="missing-token")
    return caller


async def provide_optional_caller(request: Request) -> Caller | None:
    return await authenticate(request)
