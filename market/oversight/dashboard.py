"""The regulator's dashboard (docs/API.md "Oversight": ``GET /oversight``): server-rendered
HTML over the oversight services, with charts as inline SVG and one script of its own
(``/oversight/static/dashboard.js``) that signs in the browser. Ids are shown by name
(``dashboard_names``), alerts' evidence in words (``dashboard_evidence``), money in yuan
and times in ``MARKET_TIMEZONE`` (``dashboard_format``); the trades and their CSV are
``dashboard_trades``; what the pages share (sessions, CSRF, rendering) is
``dashboard_web``.

Session (``market.oversight.dashboard_session``). A regulator signs in by opening the
key file of its enrolled key in the page: the page signs a challenge with WebCrypto
Ed25519 (the key never leaves the page; it is kept, not extractable, in the page's
IndexedDB until sign-out) and the market checks the signature against the account's
enrolled keys. The session is a row on the server; the cookie ``oversight_session``
holds only a random id. Signing out ends the row, so a copy of the cookie is dead from
then on; revoking the key, suspending the account or the session's age
(``SESSION_HOURS``) end it as well. The cookie is ``HttpOnly; SameSite=Strict;
Path=/oversight`` and ``Secure`` over https; over plain http the dashboard only signs
in on a loopback host.

CSRF. Each session has a random token, sent in a hidden field of every form (and in the
``X-CSRF-Token`` header of the page's draft requests) and compared (constant time) with
the session's; an ``Origin`` header, when sent, must be the market's own. The sign-in
form, before any session, uses the same check with a short-lived signed pre-session
cookie (double submit), whose nonce is also the challenge's. A failed check is ``403``
and changes nothing.

Writes are signed acts (``market.oversight.acts``), drafted through
``POST /oversight/acts/draft`` and signed in the page, and go through the same service
calls as the JSON API: actions through ``market.oversight.actions``, alert closures
through ``market.oversight.alerts``, approvals through
``market.oversight.actions.decide_approval``.
"""

import base64
import hmac
import secrets
import time
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.response import File
from litestar.static_files import create_static_files_router
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.services import Services
from market.oversight import acts, dashboard_session
from market.oversight.dashboard_data import (
    ACTION_LABELS,
    ACTION_NAMES,
    action_list,
    alert_list,
    approval_list,
    close_alert_data,
    decide_order,
    ledger_status,
    overview_data,
    perform_action,
    refusal_list,
    signed_form,
)
from market.oversight.dashboard_names import lookup
from market.oversight.dashboard_session import SESSION_HOURS
from market.oversight.dashboard_trades import TradesController
from market.oversight.dashboard_web import (
    COOKIE,
    HEADERS,
    PATH,
    PRE_COOKIE,
    Session,
    cookie,
    csrf_ok,
    current,
    forbidden,
    gate,
    notice,
    origin,
    origin_ok,
    page,
    redirect,
    render,
    seal,
    secure,
    session_key,
    unseal,
)

__all__ = ["COOKIE", "DashboardController", "dashboard_router"]

SIGNIN_MINUTES = 30
_LOOPBACK = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})
_STATIC = Path(__file__).resolve().parent.parent / "static" / "oversight"


def _may_sign_in_here(request: Request) -> bool:
    """Over http the cookie would cross the network in clear: loopback only."""
    return secure(request) or (request.url.hostname or "") in _LOOPBACK


def _challenge(request: Request, nonce: str) -> bytes:
    return dashboard_session.challenge(request.app.state.services.settings.ledger_origin, origin(request), nonce)


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response[str]:
    nonce = secrets.token_urlsafe(24)
    sealed = seal(session_key(request.app.state), "signin",
                  {"n": nonce, "exp": int(time.time()) + SIGNIN_MINUTES * 60})
    return render(request, "signin.html", status=status, error=error, csrf=nonce, allowed=_may_sign_in_here(request),
                  challenge=base64.b64encode(_challenge(request, nonce)).decode(), hours=SESSION_HOURS,
                  who=None, notice=None, active="", key_id="",
                  cookies=[cookie(request, PRE_COOKIE, sealed, SIGNIN_MINUTES * 60)])


# --- the pages --------------------------------------------------------------------------

class DashboardController(Controller):
    path = PATH
    include_in_schema = False

    @get("/", name="oversight-dashboard")
    async def overview(self, request: Request, db: AsyncSession, services: Services, to: str | None = None,
                       currency: str | None = None) -> Response[str]:
        session = await dashboard_session.lookup(db, request.cookies.get(COOKIE), services.clock.now())
        if session is None:
            return _sign_in_page(request)
        if session.refused is not None:
            return forbidden(request, session, session.refused)
        ctx = Ctx.of(services, session.caller)
        try:
            data = await overview_data(db, ctx, request.query_params.get("from"), to, currency or ctx.settings.currency)
        except DomainError as exc:
            return page(request, session, "overview", "overview.html", status=exc.status, data=None,
                        error=exc.detail)
        return page(request, session, "overview", "overview.html", data=data, error=None)

    @get("/alerts")
    async def alerts(self, request: Request, db: AsyncSession, services: Services,
                     status: str = "open") -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        status = status if status in ("open", "closed") else "open"
        items = await alert_list(db, Ctx.of(services, session.caller), status, services.settings.zone)
        return page(request, session, "alerts", "alerts.html", items=items, which=status)

    @get("/approvals")
    async def approvals(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        items = await approval_list(db, Ctx.of(services, session.caller))
        return page(request, session, "approvals", "approvals.html", items=items)

    @get("/refusals")
    async def refusals(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        items = await refusal_list(db, Ctx.of(services, session.caller))
        return page(request, session, "refusals", "refusals.html", items=items, notice=None)

    @get("/actions")
    async def actions(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        items = await action_list(db, Ctx.of(services, session.caller))
        return page(request, session, "actions", "actions.html", items=items, kinds=ACTION_NAMES,
                    labels=ACTION_LABELS, target=request.query_params.get("target", ""), error=None)

    @get("/ledger")
    async def ledger(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await gate(request, db)
        if isinstance(session, Response):
            return session
        status = await ledger_status(db, Ctx.of(services, session.caller), services)
        return page(request, session, "ledger", "ledger.html", info=status, notice=None)

    # --- session ---

    @post("/session", status_code=303)
    async def sign_in(self, request: Request, db: AsyncSession) -> Response[str]:
        form = await request.form()
        pre = unseal(session_key(request.app.state), "signin", request.cookies.get(PRE_COOKIE), time.time())
        if not csrf_ok(request, form, pre["n"] if pre else None) or pre is None:
            return forbidden(request, None, "csrf")
        if not _may_sign_in_here(request):
            return _sign_in_page(request, 403, "https")
        services: Services = request.app.state.services
        opened = await dashboard_session.sign_in(db, services.settings, services.clock.now(),
                                                 _challenge(request, pre["n"]), form.get("public_key"),
                                                 form.get("signature"))
        if isinstance(opened, str):
            await db.rollback()
            return _sign_in_page(request, 401 if opened == "bad-key" else 403, opened)
        await db.commit()
        value, _ = opened
        return redirect(PATH, cookies=[cookie(request, COOKIE, value, SESSION_HOURS * 3600),
                                       cookie(request, PRE_COOKIE, "", 0)])

    @post("/session/end", status_code=303)
    async def sign_out(self, request: Request, db: AsyncSession) -> Response[str]:
        session = await current(request, db)
        form = await request.form()
        if session is not None and not csrf_ok(request, form, session.csrf):
            return forbidden(request, session, "csrf")
        await dashboard_session.end(db, request.cookies.get(COOKIE), request.app.state.services.clock.now())
        await db.commit()
        return redirect(PATH, cookies=[cookie(request, COOKIE, "", 0)])

    @post("/acts/draft", status_code=200)
    async def draft(self, request: Request, db: AsyncSession, services: Services) -> Response[Any]:
        """The act to sign, for the page's script: JSON in, ``{"document", "signing_bytes"}`` out."""
        session = await current(request, db)
        if session is None:
            return Response({"detail": "no session"}, status_code=401, headers=HEADERS)
        sent = request.headers.get("x-csrf-token", "")
        if not (sent and hmac.compare_digest(sent.encode(), session.csrf.encode()) and origin_ok(request)):
            return Response({"detail": "CSRF check failed"}, status_code=403, headers=HEADERS)
        try:
            body = await request.json()
            if not isinstance(body, dict) or body.get("kind") not in acts.FIELDS:
                return Response({"detail": "want {\"kind\": \"action\"|\"approval\"|\"alert_closure\", …}"},
                                status_code=422, headers=HEADERS)
            values = {k: v for k, v in body.items() if k != "kind"}
            return Response(acts.draft(Ctx.of(services, session.caller), body["kind"], values), headers=HEADERS)
        except DomainError as exc:
            return Response({"detail": exc.detail}, status_code=exc.status, headers=HEADERS)
        except ValueError:
            return Response({"detail": "the body is not JSON"}, status_code=422, headers=HEADERS)

    # --- forms that change something ---

    async def _checked(self, request: Request, db: AsyncSession) -> tuple[Session, Any] | Response[str]:
        """The signed-in session and the posted form; else the answer that refuses the post."""
        session = await current(request, db)
        form = await request.form()
        if session is None:
            return redirect(PATH)
        if not csrf_ok(request, form, session.csrf):
            return forbidden(request, session, "csrf")
        return session, form

    @post("/actions", status_code=303)
    async def act(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        checked = await self._checked(request, db)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        ctx = Ctx.of(services, session.caller)
        target = str(form.get("target") or "").strip()
        try:
            done = await perform_action(db, ctx, signed_form(form))
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            items = await action_list(db, ctx)
            return page(request, session, "actions", "actions.html", status=exc.status, items=items,
                        kinds=ACTION_NAMES, labels=ACTION_LABELS, target=target, notice=None, error=exc.detail)
        names = await lookup(db, [done["target"]])
        said = f"{ACTION_LABELS.get(done['action'], done['action'])} ✓ {names.label(done['target'])}"
        return redirect(f"{PATH}/actions?notice={notice(said)}")

    @post("/alerts/{alert_id:str}/closure", status_code=303)
    async def close_alert(self, request: Request, db: AsyncSession, services: Services, alert_id: str) -> Response[str]:
        checked = await self._checked(request, db)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        try:
            await close_alert_data(db, Ctx.of(services, session.caller), alert_id, signed_form(form))
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            return redirect(f"{PATH}/alerts?notice={notice(exc.detail)}")
        return redirect(f"{PATH}/alerts?notice={notice(f'已关闭预警 Alert closed ✓ {alert_id}')}")

    @post("/approvals/{order_id:str}", status_code=303)
    async def decide(self, request: Request, db: AsyncSession, services: Services, order_id: str) -> Response[str]:
        checked = await self._checked(request, db)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        try:
            await decide_order(db, Ctx.of(services, session.caller), order_id, signed_form(form))
            await db.commit()
        except DomainError as exc:
            await db.rollback()
            return redirect(f"{PATH}/approvals?notice={notice(exc.detail)}")
        names = await lookup(db, [order_id])
        return redirect(f"{PATH}/approvals?notice={notice(f'已决定 Decided ✓ {names.label(order_id)}')}")


@get("/favicon.ico", include_in_schema=False, name="favicon")
async def favicon() -> File:
    """``/favicon.ico``: what a browser asks every site for (the dashboard links the same icon)."""
    return File(_STATIC / "favicon.ico", media_type="image/x-icon", content_disposition_type="inline",
                headers={"Cache-Control": "public, max-age=86400"})


def dashboard_router() -> Router:
    """The dashboard's pages, its style sheet, its script and icon (served by the market itself)."""
    static = create_static_files_router(path=f"{PATH}/static", directories=[_STATIC],
                                        name="oversight-static", include_in_schema=False)
    return Router(path="/", route_handlers=[DashboardController, TradesController, static, favicon],
                  include_in_schema=False)
