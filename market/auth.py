"""Bearer tokens and the caller of a request.

Tokens are opaque (``mkt_`` + 256 random bits), shown once, stored only as SHA-256.
A missing, unknown or revoked token is 401. Role checks are 403. Object-level checks
live in each domain's service, which answers 404 for what the caller may not see.

Accounts that are suspended or whose KYC was rejected may still authenticate and read
(their own data, by the ordinary visibility rules) but may not change anything: any
non-read request from them is 403 ``account-inactive``.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from litestar import Request
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account, ApiToken
from market.accounts.schemas import AccountStatus, Role
from market.errors import Forbidden, NotAuthenticated
from market.types import utcnow

TOKEN_PREFIX = "mkt_"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_LAST_USED_GRANULARITY = timedelta(minutes=1)


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
    account: Account
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


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'", kind="bad-token")
    return token.strip()


async def authenticate(request: Request, session: AsyncSession) -> Caller | None:
    """The caller, or None when no token was sent. A bad token is always 401."""
    token = _bearer(request)
    if token is None:
        return None
    row = (
        await session.exec(
            select(ApiToken, Account)
            .join(Account, Account.id == ApiToken.account_id)  # type: ignore[arg-type]
            .where(ApiToken.token_hash == hash_token(token))
        )
    ).first()
    if row is None or row[0].revoked_at is not None:
        raise NotAuthenticated("the token is unknown or revoked", kind="bad-token")
    api_token, account = row
    if request.method not in _READS and (account.suspended or account.status == AccountStatus.rejected) \
            and not request.route_handler.opt.get(OPEN_TO_INACTIVE):
        state = "suspended" if account.suspended else "rejected"
        raise Forbidden(f"the account is {state} and may only read", kind="account-inactive")
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > _LAST_USED_GRANULARITY:
        api_token.last_used_at = now
        session.add(api_token)
        await session.commit()
    return Caller(account=account, token_id=api_token.id)


async def provide_caller(request: Request, db: AsyncSession) -> Caller:
    caller = await authenticate(request, db)
    if caller is None:
        raise NotAuthenticated("this needs 'Authorization: Bearer <token>'", kind="missing-token")
    return caller


async def provide_optional_caller(request: Request, db: AsyncSession) -> Caller | None:
    return await authenticate(request, db)
