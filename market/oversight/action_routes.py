"""Oversight alerts, actions, approvals and ledger status (docs/API.md "Oversight"): thin
handlers — parse, one service call, commit, present.

    POST /v1/oversight/acts/draft             regulator: {"kind", …fields} → {"document", "signing_bytes"}
    GET  /v1/oversight/acts                   regulator: every signed act with its document (paged)
    GET  /v1/oversight/enrollments            regulator: every regulator enrollment, signed (paged)
    GET  /v1/oversight/alerts                 regulator, operator: ?status=open|closed&rule=
    POST /v1/oversight/alerts/{id}/closure    regulator: a signed act {"signing_bytes", "key_id", "signature"}
    POST /v1/oversight/actions                regulator: a signed act → 201 the action with its ledger entry
    POST /v1/orders/{id}/regulator-approval   regulator: a signed act → the order
    GET  /v1/oversight/actions                regulator, operator (paged)
    GET  /v1/oversight/approvals              regulator: important-data orders waiting for a decision
    GET  /v1/oversight/ledger                 regulator, operator: size, checkpoint, lag, witnesses
"""

from typing import Annotated, Any, Literal

from litestar import Request, Response, get, post
from litestar.params import Parameter
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core import idempotency
from market.core.context import Ctx
from market.core.pagination import DEFAULT_LIMIT
from market.core.services import Services
from market.oversight import actions, acts, alerts, ledger_status
from market.oversight.actions import ActionName
from market.trading.read import present
from market.trading.schemas import OrderRead

Limit = Annotated[int, Parameter(ge=1, le=500)]
Rule = Literal["self_dealing", "wash_trade", "price_outlier", "order_burst", "refused_attempt",
               "identifiable_pi_sale"]


SIGNED = "a signed act: {\"signing_bytes\", \"key_id\", \"signature\"} (POST /v1/oversight/acts/draft)"


@post("/v1/oversight/acts/draft", status_code=200, tags=["oversight"],
      summary="The act document a regulator signs for an action, approval or alert closure (regulator)")
async def draft_act(ctx: Ctx, data: acts.ActDraft) -> dict[str, Any]:
    values = dict(data.model_extra or {})
    return acts.draft(ctx, data.kind, values)


@get("/v1/oversight/acts", tags=["oversight"],
     summary="Every regulator act with its signed document, for the regulator's replay (regulator; paged)")
async def list_acts(db: AsyncSession, ctx: Ctx, limit: Limit = DEFAULT_LIMIT,
                    cursor: str | None = None) -> dict[str, Any]:
    return await acts.list_acts(db, ctx, limit, cursor)


@get("/v1/oversight/enrollments", tags=["oversight"],
     summary="Every regulator enrollment as its authority signed it (regulator; paged)")
async def list_enrollments(db: AsyncSession, ctx: Ctx, limit: Limit = DEFAULT_LIMIT,
                           cursor: str | None = None) -> dict[str, Any]:
    return await acts.list_enrollments(db, ctx, limit, cursor)


@get("/v1/oversight/alerts", tags=["oversight"], summary="Alerts raised by the rules (regulator, operator)")
async def list_alerts(db: AsyncSession, ctx: Ctx, status: Literal["open", "closed"] | None = None,
                      rule: Rule | None = None, limit: Limit = DEFAULT_LIMIT,
                      cursor: str | None = None) -> dict[str, Any]:
    return await alerts.list_alerts(db, ctx, status, rule, limit, cursor)


@post("/v1/oversight/alerts/{alert_id:str}/closure", status_code=200, tags=["oversight"],
      summary="Close an open alert with a reason: " + SIGNED + " (regulator)")
async def close_alert(db: AsyncSession, ctx: Ctx, alert_id: str, data: dict[str, Any]) -> dict[str, Any]:
    alert = await alerts.close(db, ctx, alert_id, data)
    await db.commit()
    return alerts.alert_read(alert)


@post("/v1/oversight/actions", status_code=201, tags=["oversight"],
      summary="Freeze, unfreeze, suspend, reinstate or revoke: " + SIGNED + " (regulator); takes effect at once")
async def take_action(request: Request, db: AsyncSession, ctx: Ctx, data: dict[str, Any]) -> Response[Any]:
    async def action() -> tuple[int, Any]:
        return 201, await actions.perform(db, ctx, data)

    return await idempotency.run(request, db, ctx.user.id, data, action)


@post("/v1/orders/{order_id:str}/regulator-approval", status_code=200, tags=["orders"],
      summary="Approve or reject an order of important data: " + SIGNED + " (regulator)")
async def regulator_approval(db: AsyncSession, ctx: Ctx, order_id: str, data: dict[str, Any]) -> OrderRead:
    order = await actions.decide_approval(db, ctx, order_id, data)
    await db.commit()
    return await present(db, order, ctx.user, ctx.settings.bank_account)


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
async def ledger(services: Services, db: AsyncSession, ctx: Ctx) -> dict[str, Any]:
    return await ledger_status.status(db, ctx, services.ledger)


ACTION_ROUTES = [draft_act, list_acts, list_enrollments, list_alerts, close_alert, take_action, regulator_approval,
                 list_actions, list_approvals, ledger]

__all__ = ["ACTION_ROUTES"]
