"""The regulator's dashboard (docs/API.md "Oversight": ``GET /oversight``): server-rendered
HTML over the oversight services, with charts as inline SVG and one script of its own
(``/oversight/static/dashboard.js``) that signs in the browser.

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
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.static_files import create_static_files_router
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.services import Services
from market.oversight import acts, dashboard_session
from market.oversight.dashboard_data import (
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
from market.oversight.dashboard_session import SESSION_HOURS, SignedIn
from market.storage import MasterKey

__all__ = ["COOKIE", "DashboardController", "dashboard_router"]

COOKIE = "oversight_session"
PRE_COOKIE = "oversight_signin"
PATH = "/oversight"
SIGNIN_MINUTES = 30
KEY_FILE = "oversight-session.key"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})
_HERE = Path(__file__).resolve().parent.parent
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates" / "oversight"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# --- signed values --------------------------------------------------------------------

def _key(state: State) -> bytes:
    """The session-signing key: its own random file beside the market's other keys."""
    key = getattr(state, "oversight_session_key", None)
    if key is None:
        path = state.services.settings.keys_dir / KEY_FILE
        MasterKey.load_or_create(path)  # creates it (0600, atomically) or checks mode and length
        key = path.read_bytes()
        state.oversight_session_key = key
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes, purpose: str, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unseal(key: bytes, purpose: str, value: str | None, now: float) -> dict[str, Any] | None:
    """The payload of a value ``seal`` made for ``purpose``, unexpired; else None."""
    if not value or len(value) > 1024 or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    want = hmac.new(key, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), want):
            return None
        payload = json.loads(_unb64(body))
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int) or payload["exp"] <= now:
        return None
    return payload


# --- who is signed in -----------------------------------------------------------------

Session = SignedIn


async def current(request: Request, db: AsyncSession) -> Session | None:
    return await dashboard_session.current(db, request.cookies.get(COOKIE), request.app.state.services.clock.now())


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _may_sign_in_here(request: Request) -> bool:
    """Over http the cookie would cross the network in clear: loopback only."""
    return _secure(request) or (request.url.hostname or "") in _LOOPBACK


def _cookie(request: Request, name: str, value: str, max_age: int) -> Cookie:
    return Cookie(key=name, value=value, path=PATH, httponly=True, samesite="strict", secure=_secure(request),
                  max_age=max_age)


def _origin_ok(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == _origin(request)


def _csrf_ok(request: Request, form: Any, want: str | None) -> bool:
    if not want:
        return False
    sent = form.get("csrf") if form is not None else None
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), want.encode()) and _origin_ok(request)


# --- rendering ------------------------------------------------------------------------

def render(name: str, status: int = 200, cookies: list[Cookie] | None = None, **values: Any) -> Response[str]:
    values.setdefault("key_id", "")
    html = _ENV.get_template(name).render(**values)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers=_HEADERS,
                    cookies=cookies or [])


def _page(session: Session, active: str, name: str, **values: Any) -> Response[str]:
    return render(name, active=active, who=session.caller.account, csrf=session.csrf, key_id=session.key_id,
                  **values)


def _challenge(request: Request, nonce: str) -> bytes:
    return dashboard_session.challenge(request.app.state.services.settings.ledger_origin, _origin(request), nonce)


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response[str]:
    nonce = secrets.token_urlsafe(24)
    sealed = seal(_key(request.app.state), "signin", {"n": nonce, "exp": int(time.time()) + SIGNIN_MINUTES * 60})
    return render("signin.html", status=status, error=error, csrf=nonce, allowed=_may_sign_in_here(request),
                  challenge=base64.b64encode(_challenge(request, nonce)).decode(), hours=SESSION_HOURS,
                  who=None, notice=None, active="", key_id="",
                  cookies=[_cookie(request, PRE_COOKIE, sealed, SIGNIN_MINUTES * 60)])


def _forbidden(request: Request, session: Session | None, reason: str) -> Response[str]:
    return render("refused.html", status=403, reason=reason, who=session.caller.account if session else None,
                  csrf=session.csrf if session else "", key_id=session.key_id if session else "", active="",
                  notice=None)


def _redirect(to: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response("", status_code=303, headers={**_HEADERS, "Location": to}, cookies=cookies or [])


def _notice(text: str) -> str:
    return quote(text[:300], safe="")



# --- the pages --------------------------------------------------------------------------

class DashboardController(Controller):
    path = PATH
    include_in_schema = False

    @get("/", name="oversight-dashboard")
    async def overview(self, request: Request, db: AsyncSession, services: Services, to: str | None = None,
                       currency: str | None = None) -> Response[str]:
        session = await current(request, db)
        if session is None:
            return _sign_in_page(request)
        ctx = Ctx.of(services, session.caller)
        try:
            data = await overview_data(db, ctx, request.query_params.get("from"), to, currency or ctx.settings.currency)
        except DomainError as exc:
            return _page(session, "overview", "overview.html", data=None, error=exc.detail, notice=None)
        return _page(session, "overview", "overview.html", data=data, error=None,
                     notice=request.query_params.get("notice"))

    @get("/alerts")
    async def alerts(self, request: Request, db: AsyncSession, services: Services,
                     status: str = "open") -> Response[str]:
        session = await current(request, db)
        if session is None:
            return _redirect(PATH)
        ctx = Ctx.of(services, session.caller)
        status = status if status in ("open", "closed") else "open"
        items = await alert_list(db, ctx, status)
        return _page(session, "alerts", "alerts.html", items=items, which=status,
                     notice=request.query_params.get("notice"))

    @get("/approvals")
    async def approvals(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await current(request, db)
        if session is None:
            return _redirect(PATH)
        items = await approval_list(db, Ctx.of(services, session.caller))
        return _page(session, "approvals", "approvals.html", items=items, notice=request.query_params.get("notice"))

    @get("/refusals")
    async def refusals(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await current(request, db)
        if session is None:
            return _redirect(PATH)
        items = await refusal_list(db, Ctx.of(services, session.caller))
        return _page(session, "refusals", "refusals.html", items=items, notice=None)

    @get("/actions")
    async def actions(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await current(request, db)
        if session is None:
            return _redirect(PATH)
        items = await action_list(db, Ctx.of(services, session.caller))
        return _page(session, "actions", "actions.html", items=items, kinds=ACTION_NAMES,
                     target=request.query_params.get("target", ""), notice=request.query_params.get("notice"),
                     error=None)

    @get("/ledger")
    async def ledger(self, request: Request, db: AsyncSession, services: Services) -> Response[str]:
        session = await current(request, db)
        if session is None:
            return _redirect(PATH)
        status = await ledger_status(db, Ctx.of(services, session.caller), services)
        return _page(session, "ledger", "ledger.html", info=status, notice=None)

    # --- session ---

    @post("/session", status_code=303)
    async def sign_in(self, request: Request, db: AsyncSession) -> Response[str]:
        form = await request.form()
        pre = unseal(_key(request.app.state), "signin", request.cookies.get(PRE_COOKIE), time.time())
        if not _csrf_ok(request, form, pre["n"] if pre else None) or pre is None:
            return render("refused.html", status=403, reason="csrf", who=None, csrf="", key_id="", active="",
                          notice=None)
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
        return _redirect(PATH, cookies=[_cookie(request, COOKIE, value, SESSION_HOURS * 3600),
                                        _cookie(request, PRE_COOKIE, "", 0)])

    @post("/session/end", status_code=303)
    async def sign_out(self, request: Request, db: AsyncSession) -> Response[str]:
        session = await current(request, db)
        form = await request.form()
        if session is not None and not _csrf_ok(request, form, session.csrf):
            return _forbidden(request, session, "csrf")
        await dashboard_session.end(db, request.cookies.get(COOKIE), request.app.state.services.clock.now())
        await db.commit()
        return _redirect(PATH, cookies=[_cookie(request, COOKIE, "", 0)])

    @post("/acts/draft", status_code=200)
    async def draft(self, request: Request, db: AsyncSession, services: Services) -> Response[Any]:
        """The act to sign, for the page's script: JSON in, ``{"document", "signing_bytes"}`` out."""
        session = await current(request, db)
        if session is None:
            return Response({"detail": "no session"}, status_code=401, headers=_HEADERS)
        sent = request.headers.get("x-csrf-token", "")
        if not (sent and hmac.compare_digest(sent.encode(), session.csrf.encode()) and _origin_ok(request)):
            return Response({"detail": "CSRF check failed"}, status_code=403, headers=_HEADERS)
        try:
            body = await request.json()
            if not isinstance(body, dict) or body.get("kind") not in acts.FIELDS:
                return Response({"detail": "want {\"kind\": \"action\"|\"approval\"|\"alert_closure\", …}"},
                                status_code=422, headers=_HEADERS)
            values = {k: v for k, v in body.items() if k != "kind"}
            return Response(acts.draft(Ctx.of(services, session.caller), body["kind"], values), headers=_HEADERS)
        except DomainError as exc:
            return Response({"detail": exc.detail}, status_code=exc.status, headers=_HEADERS)
        except ValueError:
            return Response({"detail": "the body is not JSON"}, status_code=422, headers=_HEADERS)

    # --- forms that change something ---

    async def _checked(self, request: Request, db: AsyncSession) -> tuple[Session, Any] | Response[str]:
        """The signed-in session and the posted form; else the answer that refuses the post."""
        session = await current(request, db)
        form = await request.form()
        if session is None:
            return _redirect(PATH)
        if not _csrf_ok(request, form, session.csrf):
            return _forbidden(request, session, "csrf")
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
            return render("actions.html", status=exc.status, active="actions", who=session.caller.account,
                          csrf=session.csrf, key_id=session.key_id, items=items, kinds=ACTION_NAMES, target=target,
                          notice=None, error=exc.detail)
        return _redirect(f"{PATH}/actions?notice={_notice(f'{done} ✓ {target}')}")

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
            return _redirect(f"{PATH}/alerts?notice={_notice(exc.detail)}")
        return _redirect(f"{PATH}/alerts?notice={_notice(f'{alert_id} ✓')}")

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
            return _redirect(f"{PATH}/approvals?notice={_notice(exc.detail)}")
        return _redirect(f"{PATH}/approvals?notice={_notice(f'{order_id} ✓')}")


def dashboard_router() -> Router:
    """The dashboard's pages, its style sheet and its script (served by the market itself)."""
    static = create_static_files_router(path=f"{PATH}/static", directories=[_HERE / "static" / "oversight"],
                                        name="oversight-static", include_in_schema=False)
    return Router(path="/", route_handlers=[DashboardController, static], include_in_schema=False)
