"""Account rules: sign-up, KYC verification, signing keys and API tokens (no HTTP)."""

import base64

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from market import audit
from market.accounts.models import Account, AccountKey, ApiToken
from market.accounts.schemas import (
    AccountCreate,
    AccountRead,
    AccountStatus,
    KeyRead,
    Role,
    STAFF_ROLES,
    TokenRead,
)
from market.auth import Caller, hash_token, new_token
from market.errors import Conflict, Forbidden, InvalidTransition, NotFound
from market.ids import new_id
from market.pagination import page_of, paginate
from market.types import utcnow


def account_read(account: Account) -> AccountRead:
    return AccountRead(
        id=account.id,
        name=account.name,
        kind=account.kind,
        roles=sorted(account.role_set),
        uscc=account.uscc,
        jurisdiction=account.jurisdiction,
        status=account.status,
        suspended=account.suspended,
        created_at=account.created_at,
        verified_at=account.verified_at,
    )


def key_read(key: AccountKey) -> KeyRead:
    return KeyRead(id=key.id, public_key=key.public_key, created_at=key.created_at, revoked_at=key.revoked_at)


def token_read(token: ApiToken) -> TokenRead:
    return TokenRead(
        id=token.id,
        label=token.label,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


async def _issue_token(session: AsyncSession, account_id: str, label: str | None) -> tuple[ApiToken, str]:
    token = new_token()
    row = ApiToken(id=new_id("tok"), account_id=account_id, token_hash=hash_token(token), label=label)
    session.add(row)
    return row, token


async def create_account(
    session: AsyncSession,
    data: AccountCreate,
    caller: Caller | None,
    default_jurisdiction: str,
    *,
    bootstrap: bool = False,
) -> tuple[Account, str]:
    """Sign-up by anyone (provider and/or buyer) or by an operator (any role).

    Staff accounts (regulator, operator) can only be made by an operator and start
    verified; everyone else starts pending KYC.
    """
    staff = bool(set(data.roles) & STAFF_ROLES)
    if staff and not bootstrap and (caller is None or not caller.has(Role.operator)):
        raise Forbidden("only an operator can create regulator or operator accounts", kind="wrong-role")
    if data.uscc is not None:
        taken = (await session.exec(select(Account.id).where(Account.uscc == data.uscc))).first()
        if taken is not None:
            raise Conflict("an account with this unified social credit code exists", kind="duplicate-account")
    now = utcnow()
    account = Account(
        id=new_id("acct"),
        name=data.name,
        kind=data.kind,
        roles=",".join(sorted(r.value for r in data.roles)),
        uscc=data.uscc,
        jurisdiction=data.jurisdiction or default_jurisdiction,
        status=AccountStatus.verified if staff else AccountStatus.pending,
        verified_at=now if staff else None,
        verified_by=caller.id if staff and caller else None,
        created_at=now,
    )
    session.add(account)
    _, token = await _issue_token(session, account.id, "sign-up")
    await audit.record(
        session,
        "account.created",
        f"account:{account.id}",
        caller.id if caller else account.id,
        {"kind": account.kind, "roles": sorted(account.role_set), "jurisdiction": account.jurisdiction,
         "status": account.status},
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("an account with this unified social credit code exists", kind="duplicate-account") from None
    return account, token


async def get_account(session: AsyncSession, caller: Caller, account_id: str) -> Account:
    """Self, operators and regulators see an account; anyone else gets 404."""
    if account_id != caller.id and not caller.is_staff:
        raise NotFound(f"no account {account_id}")
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


async def list_accounts(
    session: AsyncSession, caller: Caller, status: str | None, role: str | None, limit: int, cursor: str | None
) -> dict:
    caller.require(Role.operator, Role.regulator)
    query = select(Account)
    if status:
        query = query.where(Account.status == status)
    if role:
        # Role names are not substrings of one another, so a containment test is exact.
        query = query.where(Account.roles.contains(role))  # type: ignore[attr-defined]
    rows = list((await session.exec(paginate(query, Account.id, limit, cursor))).all())
    return page_of(rows, limit, account_read)


async def decide_verification(
    session: AsyncSession, caller: Caller, account_id: str, decision: str, reason: str
) -> Account:
    """KYC: pending → verified | rejected; a rejected account can be approved on appeal."""
    caller.require(Role.operator)
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    allowed = {"approve": {AccountStatus.pending, AccountStatus.rejected}, "reject": {AccountStatus.pending}}
    if account.status not in allowed[decision]:
        raise InvalidTransition(f"account {account_id}", account.status, f"KYC {decision}")
    target = AccountStatus.verified if decision == "approve" else AccountStatus.rejected
    now = utcnow()
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.status == account.status)  # type: ignore[arg-type]
        .values(status=target, status_reason=reason or None, verified_at=now if target == AccountStatus.verified else None,
                verified_by=caller.id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"account {account_id} changed meanwhile; read it and try again", kind="concurrent-update")
    await audit.record(
        session, f"account.{target}", f"account:{account_id}", caller.id, {"decision": decision}
    )
    await session.refresh(account)
    return account


async def add_key(session: AsyncSession, caller: Caller, public_key_b64: str) -> AccountKey:
    taken = (await session.exec(select(AccountKey).where(AccountKey.public_key == public_key_b64))).first()
    if taken is not None:
        raise Conflict("this public key is already registered", kind="duplicate-key")
    key = AccountKey(id=new_id("key"), account_id=caller.id, public_key=public_key_b64)
    session.add(key)
    await audit.record(
        session, "account.key_added", f"account:{caller.id}", caller.id,
        {"key_id": key.id, "alg": "Ed25519", "public_key": public_key_b64},
    )
    return key


async def list_keys(session: AsyncSession, caller: Caller) -> list[AccountKey]:
    query = select(AccountKey).where(AccountKey.account_id == caller.id).order_by(AccountKey.id)  # type: ignore[arg-type]
    return list((await session.exec(query)).all())


async def revoke_key(session: AsyncSession, caller: Caller, key_id: str) -> None:
    key = await session.get(AccountKey, key_id)
    if key is None or key.account_id != caller.id:
        raise NotFound(f"no key {key_id}")
    if key.revoked_at is not None:
        raise InvalidTransition(f"key {key_id}", "revoked", "revoking")
    key.revoked_at = utcnow()
    session.add(key)
    await audit.record(session, "account.key_revoked", f"account:{caller.id}", caller.id, {"key_id": key.id})


async def active_key(session: AsyncSession, account_id: str, key_id: str) -> bytes:
    """The raw public key of an unrevoked key of ``account_id``; NotFound otherwise."""
    key = await session.get(AccountKey, key_id)
    if key is None or key.account_id != account_id or key.revoked_at is not None:
        raise NotFound(f"no unrevoked key {key_id} of account {account_id}")
    return base64.b64decode(key.public_key)


async def create_token(session: AsyncSession, caller: Caller, label: str | None) -> tuple[ApiToken, str]:
    return await _issue_token(session, caller.id, label)


async def list_tokens(session: AsyncSession, caller: Caller) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.account_id == caller.id).order_by(ApiToken.id)  # type: ignore[arg-type]
    return list((await session.exec(query)).all())


async def revoke_token(session: AsyncSession, caller: Caller, token_id: str) -> None:
    token = await session.get(ApiToken, token_id)
    if token is None or token.account_id != caller.id:
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is not None:
        raise InvalidTransition(f"token {token_id}", "revoked", "revoking")
    token.revoked_at = utcnow()
    session.add(token)
