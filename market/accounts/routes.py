"""Accounts and keys (docs/API.md): thin controllers over ``accounts.service``."""

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import service
from market.accounts.schemas import (
    AccountCreate,
    AccountRead,
    AccountStatus,
    KeyCreate,
    KeyRead,
    Role,
    SignUpResult,
    TokenCreate,
    TokenCreated,
    TokenRead,
    VerificationDecision,
)
from market.core import idempotency
from market.core.context import Ctx
from market.core.pagination import DEFAULT_LIMIT, Page
from market.web.auth import OPEN_TO_INACTIVE, Caller


class AccountController(Controller):
    path = "/v1/accounts"
    tags = ["accounts"]

    @post(
        "/",
        status_code=201,
        summary="Sign up (or, as an operator, create any account)",
        responses={},
    )
    async def sign_up(
        self, request: Request, db: AsyncSession, maybe_ctx: Ctx, data: AccountCreate
    ) -> Response[SignUpResult]:
        async def action() -> tuple[int, Any]:
            account, token = await service.create_account(db, maybe_ctx, data)
            return 201, SignUpResult(account=service.account_read(account), token=token)

        return await idempotency.run(request, db, maybe_ctx.caller.id if maybe_ctx.caller else None, data, action)

    @get("/me", summary="The caller's account")
    async def me(self, caller: Caller) -> AccountRead:
        return service.account_read(caller.account)

    @get("/", summary="List accounts (operator, regulator)")
    async def list_accounts(
        self,
        db: AsyncSession,
        ctx: Ctx,
        status: AccountStatus | None = None,
        role: Role | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[AccountRead]:
        return Page[AccountRead](**await service.list_accounts(db, ctx, status, role, limit, cursor))

    @get("/{account_id:str}", summary="One account (itself, operator, regulator)")
    async def get_account(self, db: AsyncSession, ctx: Ctx, account_id: str) -> AccountRead:
        return service.account_read(await service.get_account(db, ctx, account_id))

    @post("/{account_id:str}/verification", status_code=200, summary="KYC decision (operator)")
    async def verification(
        self, db: AsyncSession, ctx: Ctx, account_id: str, data: VerificationDecision
    ) -> AccountRead:
        account = await service.decide_verification(db, ctx, account_id, data.decision, data.reason)
        await db.commit()
        return service.account_read(account)

    @post("/me/keys", status_code=201, summary="Register an Ed25519 public key")
    async def add_key(self, request: Request, db: AsyncSession, ctx: Ctx, data: KeyCreate) -> Response[KeyRead]:
        async def action() -> tuple[int, Any]:
            return 201, service.key_read(await service.add_key(db, ctx, data.public_key))

        return await idempotency.run(request, db, ctx.user.id, data, action)

    @get("/me/keys", summary="The caller's keys, revoked ones included (one page: an account has few)")
    async def list_keys(self, db: AsyncSession, ctx: Ctx) -> Page[KeyRead]:
        return Page(items=[service.key_read(k) for k in await service.list_keys(db, ctx)], next_cursor=None)

    @delete("/me/keys/{key_id:str}", status_code=204, summary="Revoke a key (kept for old signatures)",
            opt={OPEN_TO_INACTIVE: True})
    async def revoke_key(self, db: AsyncSession, ctx: Ctx, key_id: str) -> None:
        await service.revoke_key(db, ctx, key_id)
        await db.commit()

    @post("/me/tokens", status_code=201, summary="Another API token (shown only here)")
    async def add_token(
        self, request: Request, db: AsyncSession, ctx: Ctx, data: TokenCreate | None = None
    ) -> Response[TokenCreated]:
        body = data or TokenCreate()

        async def action() -> tuple[int, Any]:
            return 201, await service.create_token(db, ctx, body.label)

        return await idempotency.run(request, db, ctx.user.id, body, action)

    @get("/me/tokens", summary="The caller's tokens, never their secrets (one page: an account has few)")
    async def list_tokens(self, db: AsyncSession, ctx: Ctx) -> Page[TokenRead]:
        return Page(items=[service.token_read(t) for t in await service.list_tokens(db, ctx)], next_cursor=None)

    @delete("/me/tokens/{token_id:str}", status_code=204, summary="Revoke a token", opt={OPEN_TO_INACTIVE: True})
    async def revoke_token(self, db: AsyncSession, ctx: Ctx, token_id: str) -> None:
        await service.revoke_token(db, ctx, token_id)
        await db.commit()
