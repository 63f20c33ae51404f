"""Oversight alerts, actions, approvals and ledger status (API.md "Oversight"): thin
handlers — parse, one service call, commit, present.

    GET  /v1/oversight/alerts                 regulator, operator: ?status=open|closed&rule=
    POST /v1/oversight/alerts/{id}/closure    regulator: {"reason"}
    POST /v1/oversight/actions                regulator → 201 the action with its ledger entry
    GET  /v1/oversight/actions                regulator, operator (paged)
    GET  /v1/oversight/approvals              regulator: important-data orders waiting for a decision
    GET  /v1/oversight/ledger                 regulator, operator: size, checkpoint, lag, witnesses
"""

from typing import Annotated, Any, Literal

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from pydantic import Field, field_validator
from sqlmodel.ext.asyncio.session import AsyncSession

from market import idempotency
from market.accounts.schemas import Strict
from market.context import Ctx
from market.oversight import actions, alerts, ledger_status
from market.oversight.actions import ActionName
from market.pagination import DEFAULT_LIMIT

Limit = Annotated[int, Parameter(ge=1, le=500)]
Rule = Literal["self_dealing", "wash_trade", "price_outlier", "order_burst", "refused_attempt",
               "identifiable_pi_sale"]


class Reasoned(Strict):
    reason: str = Field(min_length=1, max_length=2000)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a reason is required")
        return value


class ActionCreate(Reasoned):
    action: ActionName
    target: str = Field(min_length=1, max_length=40)


class AlertClosure(Reasoned):
    pass


@get("/v1/oversight/alerts", tags=["oversight"], summary="Alerts raised by the rules (regulator, operator)")
async def list_alerts(db: AsyncSession, ctx: Ctx, status: Literal["open", "closed"] | None = None,
                      rule: Rule | None = None, limit: Limit = DEFAULT_LIMIT,
                      cursor: str | None = None) -> dict[str, Any]:
    return await alerts.list_alerts(db, ctx, status, rule, limit, cursor)


@post("/v1/oversight/alerts/{alert_id:str}/closure", status_code=200, tags=["oversight"],
      summary="Close an open alert with a reason (regulator)")
async def close_alert(db: AsyncSession, ctx: Ctx, alert_id: str, data: AlertClosure) -> dict[str, Any]:
    alert = await alerts.close(db, ctx, alert_id, data.reason)
    await db.commit()
    return alerts.alert_read(alert)


@post("/v1/oversight/actions", status_code=201, tags=["oversight"],
      summary="Freeze, unfreeze, suspend, reinstate or revoke (regulator); takes effect at once")
async def take_action(request: Request, db: AsyncSession, ctx: Ctx, data: ActionCreate) -> Response[Any]:
    async def action() -> tuple[int, Any]:
        return 201, await actions.perform(db, ctx, data.action, data.target, data.reason)

    return await idempotency.run(request, db, ctx.user.id, data, action)


@get("/v1/oversight/actions", tags=["oversight"], summary="Regulators' actions (regulator, operator; paged)")
async def list_actions(db: AsyncSession, ctx: Ctx, target: str | None = None, action: ActionName | None = None,
                       limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
    return await actions.list_actions(db, ctx, target, action, limit, cursor)


@get("/v1/oversight/approvals", tags=["oversight"],
     summary="Important-data orders waiting for a regulator's decision (regulator)")
async def list_approvals(db: AsyncSession, ctx: Ctx, limit: Limit = DEFAULT_LIMIT,
                         cursor: str | None = None) -> dict[str, Any]:
    return await actions.approvals(db, ctx, limit, cursor)


@get("/v1/oversight/ledger", tags=["oversight"],
     summary="Ledger size, last checkpoint, integration lag, pending entries, witnesses (regulator, operator)")
async def ledger(state: State, db: AsyncSession, ctx: Ctx) -> dict[str, Any]:
    return await ledger_status.status(db, ctx, state.ledger)


ACTION_ROUTES = [list_alerts, close_alert, take_action, list_actions, list_approvals, ledger]

__all__ = ["ACTION_ROUTES"]
