"""Account rules: sign-up, KYC verification, signing keys and API tokens (no HTTP)."""

from sqlalchemy import bindparam, insert, literal_column, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import access
from market.accounts.models import Account, AccountKey, ApiToken, TokenCount
from market.accounts.schemas import (
    STAFF_ROLES,
    AccountCreate,
    AccountRead,
    AccountStatus,
    KeyRead,
    Role,
    TokenCreated,
    TokenRead,
)
from market.accounts.states import ACCOUNT
from market.core import audit, outbox
from market.core.context import Ctx
from market.core.db import rowcount, run, table_of
from market.core.errors import Conflict, Forbidden, InvalidTransition, NotFound
from market.core.events import KeyRevoked
from market.core.ids import new_id
from market.core.pagination import page_of, paginate
from market.web.auth import hash_token, new_token
from market.web.credentials import AccountSnapshot


def account_read(account: Account | AccountSnapshot) -> AccountRead:
    return AccountRead(
        id=account.id,
        name=account.name,
        kind=account.kind,
        roles=sorted(account.role_set),
        uscc=account.uscc,
        controller_uscc=account.controller_uscc,
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


async def _issue_token(session: AsyncSession, ctx: Ctx, account_id: str, label: str | None) -> tuple[ApiToken, str]:
    token = new_token()
    row = ApiToken(id=new_id("tok"), account_id=account_id, token_hash=hash_token(token), label=label,
                   created_at=ctx.now)
    session.add(row)
    return row, token


async def create_account(
    session: AsyncSession, ctx: Ctx, data: AccountCreate, *, bootstrap: bool = False
) -> tuple[Account, str]:
    """Sign-up by anyone (provider and/or buyer) or by an operator (operators too).

    Operator accounts can only be made by an operator (or at bootstrap) and start
    verified; everyone else starts pending KYC. Regulators are never made here: only
    from an enrollment their authority signed (``accounts.regulators``), so 403 whoever
    asks.
    """
    caller = ctx.caller
    if Role.regulator in data.roles:
        raise Forbidden("regulator accounts are made only from an enrollment signed by the regulator authority "
                        "(market admin create-regulator --enrollment FILE), not through the API",
                        kind="regulator-needs-enrollment")
    staff = bool(set(data.roles) & STAFF_ROLES)
    if staff and not bootstrap and (caller is None or not caller.has(Role.operator)):
        raise Forbidden("only an operator can create regulator or operator accounts", kind="wrong-role")
    if data.uscc is not None:
        taken = (await session.exec(select(Account.id).where(Account.uscc == data.uscc))).first()
        if taken is not None:
            raise Conflict("an account with this unified social credit code exists", kind="duplicate-account")
    now = ctx.now
    account = Account(
        id=new_id("acct"),
        name=data.name,
        kind=data.kind,
        roles=",".join(sorted(r.value for r in data.roles)),
        uscc=data.uscc,
        controller_uscc=data.controller_uscc,
        jurisdiction=data.jurisdiction or ctx.settings.jurisdiction,
        verified_at=now if staff else None,
        verified_by=caller.id if staff and caller else None,
        status=AccountStatus.verified if staff else AccountStatus.pending,
        created_at=now,
    )
    session.add(account)
    session.add(TokenCount(account_id=account.id, live=1))
    _, token = await _issue_token(session, ctx, account.id, "sign-up")
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("an account with this unified social credit code exists", kind="duplicate-account") from None
    # Staff accounts start verified, so this is not ACCOUNT.create (which starts pending).
    await audit.record(session, ctx, "account.created", f"account:{account.id}", caller.id if caller else account.id,
                       {"kind": account.kind, "roles": sorted(account.role_set),
                        "jurisdiction": account.jurisdiction, "status": account.status})
    if account.status == AccountStatus.pending:
        await outbox.to_role(session, ctx, "account.verification_requested", outbox.OPERATORS, account.id,
                            account=account.id, name=account.name, kind=account.kind, roles=sorted(account.role_set))
    return account, token


async def get_account(session: AsyncSession, ctx: Ctx, account_id: str) -> Account:
    """Self, operators and regulators see an account; anyone else gets 404."""
    return await access.load(session, account_id, ctx.user)


async def list_accounts(
    session: AsyncSession, ctx: Ctx, status: str | None, role: str | None, limit: int, cursor: str | None
) -> dict:
    ctx.user.require(Role.operator, Role.regulator)
    query = select(Account).where(access.visible_accounts(ctx.user))
    if status:
        query = query.where(Account.status == status)
    if role:
        # Role names are not substrings of one another, so a containment test is exact.
        query = query.where(col(Account.roles).contains(role))
    rows = list((await session.exec(paginate(query, col(Account.id), limit, cursor))).all())
    return page_of(rows, limit, account_read)


async def decide_verification(session: AsyncSession, ctx: Ctx, account_id: str, decision: str,
                              reason: str) -> Account:
    """KYC: pending → verified | rejected; a rejected account can be approved on appeal."""
    ctx.user.require(Role.operator)
    account = await access.load(session, account_id, ctx.user)
    verified = decision == "approve"
    await ACCOUNT.move(session, account, "approve" if verified else "reject", ctx, {"decision": decision},
                       status_reason=reason or None, verified_at=ctx.now if verified else None,
                       verified_by=ctx.user.id)
    return account


async def set_suspended(session: AsyncSession, ctx: Ctx, account_id: str, suspended: bool, reason: str) -> Account:
    """A regulator suspends (or reinstates) an account: it may read but not act meanwhile."""
    ctx.user.require(Role.regulator)
    account = await access.load(session, account_id, ctx.user)
    if account.suspended == suspended:
        raise Conflict(f"account {account_id} is already {'suspended' if suspended else 'active'}", kind="no-change")
    action = "suspend" if suspended else "reinstate"
    salted = await audit.salted(session, ACCOUNT.subject(account), ACCOUNT.entry_type(action), {"reason": reason})
    await ACCOUNT.move(session, account, action, ctx, {"reason_salted_sha256": salted}, suspended=suspended)
    return account


async def add_key(session: AsyncSession, ctx: Ctx, public_key_b64: str) -> AccountKey:
    caller = ctx.user
    taken = (await session.exec(select(AccountKey).where(AccountKey.public_key == public_key_b64))).first()
    if taken is not None:
        raise Conflict("this public key is already registered", kind="duplicate-key")
    key = AccountKey(id=new_id("key"), account_id=caller.id, public_key=public_key_b64, created_at=ctx.now)
    session.add(key)
    await audit.record(session, ctx, "account.key_added", f"account:{caller.id}", caller.id,
        {"key_id": key.id, "alg": "Ed25519", "public_key": public_key_b64},
    )
    return key


async def list_keys(session: AsyncSession, ctx: Ctx) -> list[AccountKey]:
    query = select(AccountKey).where(col(AccountKey.account_id) == ctx.user.id).order_by(col(AccountKey.id))
    return list((await session.exec(query)).all())


async def revoke_key(session: AsyncSession, ctx: Ctx, key_id: str) -> None:
    """Revoke a key (kept for checking old signatures). What it signed that is still
    pending is void in the same transaction (``KeyRevoked``: other domains subscribe)."""
    caller = ctx.user
    key = await session.get(AccountKey, key_id)
    if key is None or key.account_id != caller.id:
        raise NotFound(f"no key {key_id}")
    result = await session.execute(
        update(AccountKey).where(col(AccountKey.id) == key_id, col(AccountKey.revoked_at).is_(None))
        .values(revoked_at=ctx.now))
    if rowcount(result) != 1:
        raise InvalidTransition(f"key {key_id}", "revoked", "revoking")
    await session.refresh(key)
    await audit.record(session, ctx, "account.key_revoked", f"account:{caller.id}", caller.id, {"key_id": key.id})
    await ctx.services.events.publish(session, ctx, KeyRevoked(key))


# A token made by its account: each statement built once. The account's live tokens are
# counted on its row of ``token_counts``: taking a place is one ``UPDATE`` whatever the
# account's history (counting its tokens grew with them), and on PostgreSQL that row's
# lock makes two requests at once take turns for the last free place.
_TOKENS = table_of(ApiToken)
_COUNTS = table_of(TokenCount)
_TAKING = (update(_COUNTS).where(_COUNTS.c.account_id == bindparam("account"), _COUNTS.c.live < bindparam("cap"))
           .values(live=_COUNTS.c.live + literal_column("1")))
_TAKE_PLACE = _TAKING.returning(_COUNTS.c.live)
_LIVE_TOKENS = select(_COUNTS.c.live).where(_COUNTS.c.account_id == bindparam("account"))
_FREE_PLACE = update(_COUNTS).where(_COUNTS.c.account_id == bindparam("account")).values(live=_COUNTS.c.live - literal_column("1"))
_ADD_TOKEN = insert(_TOKENS)
# PostgreSQL: the place and the token in one statement (a data-modifying CTE), one round
# trip where two were; the token is inserted only if a place was taken. (Its parameters
# are named apart from the columns: a parameter named as a column would be SET too.)
_PLACED = _TAKING.returning(_COUNTS.c.account_id).cte("placed")
_TAKE_PLACE_AND_ADD = insert(_TOKENS).from_select(
    ["id", "account_id", "token_hash", "label", "created_at"],
    core_select(bindparam("token_id", type_=_TOKENS.c.id.type), _PLACED.c.account_id,
           bindparam("hash", type_=_TOKENS.c.token_hash.type), bindparam("token_label", type_=_TOKENS.c.label.type),
           bindparam("at", type_=_TOKENS.c.created_at.type)),
).returning(_TOKENS.c.id)


async def create_token(session: AsyncSession, ctx: Ctx, label: str | None) -> TokenCreated:
    """Another token for the caller's account, pending accounts included (so a leaked
    sign-up token can be replaced before KYC). At most ``MARKET_MAX_TOKENS_PER_ACCOUNT``
    live (unrevoked) tokens: 409 ``too-many-tokens`` beyond, nothing created. The answer
    holds the secret, shown this once."""
    account_id = ctx.user.id
    cap = ctx.settings.max_tokens_per_account
    token, token_id = new_token(), new_id("tok")
    token_hash, place = hash_token(token), {"account": account_id, "cap": cap}
    if session.get_bind().dialect.name == "postgresql":
        taken = (await run(session, _TAKE_PLACE_AND_ADD, {"token_id": token_id, "hash": token_hash,
                                                          "token_label": label, "at": ctx.now, **place})
                 ).scalar_one_or_none()
    else:
        await run(session, _ADD_TOKEN, {"id": token_id, "account_id": account_id, "token_hash": token_hash,
                                        "label": label, "created_at": ctx.now})
        taken = (await run(session, _TAKE_PLACE, place)).scalar_one_or_none()
    if taken is None:
        live = (await session.execute(_LIVE_TOKENS, {"account": account_id})).scalar_one()
        raise Conflict(f"the account holds {live} live tokens, the most allowed is {cap}; "
                       "revoke one (DELETE /v1/accounts/me/tokens/{id}) first", kind="too-many-tokens")
    return TokenCreated(id=token_id, label=label, created_at=ctx.now, last_used_at=None, revoked_at=None, token=token)


async def list_tokens(session: AsyncSession, ctx: Ctx) -> list[ApiToken]:
    query = select(ApiToken).where(col(ApiToken.account_id) == ctx.user.id).order_by(col(ApiToken.id))
    return list((await session.exec(query)).all())


async def revoke_token(session: AsyncSession, ctx: Ctx, token_id: str) -> None:
    token = await session.get(ApiToken, token_id)
    if token is None or token.account_id != ctx.user.id:
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is not None:
        raise InvalidTransition(f"token {token_id}", "revoked", "revoking")
    # Race-safe: of two revocations at once, one frees the place and the other is 409.
    result = await session.execute(update(_TOKENS).where(_TOKENS.c.id == token_id, _TOKENS.c.revoked_at.is_(None))
                                   .values(revoked_at=ctx.now))
    if rowcount(result) != 1:
        raise InvalidTransition(f"token {token_id}", "revoked", "revoking")
    await session.execute(_FREE_PLACE, {"account": token.account_id})
