"""What every dashboard page shares (``market.oversight.dashboard``,
``market.oversight.dashboard_trades``): the signed values of the sign-in form, who is
signed in, the cookies, the CSRF check, and rendering (the Jinja environment with its
``money`` and ``when`` filters, the security headers)."""

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from litestar import Request, Response
from litestar.datastructures import Cookie, State
from sqlmodel.ext.asyncio.session import AsyncSession

from market.oversight import dashboard_session
from market.oversight.dashboard_evidence import RULE_NAMES
from market.oversight.dashboard_format import moment_html, money_filter
from market.oversight.dashboard_session import SignedIn
from market.storage import MasterKey

__all__ = ["COOKIE", "HEADERS", "PATH", "PRE_COOKIE", "Session", "cookie", "csrf_ok", "current", "forbidden", "gate",
           "notice", "origin", "origin_ok", "page", "redirect", "render", "seal", "secure", "session_key", "unseal"]

COOKIE = "oversight_session"
PRE_COOKIE = "oversight_signin"
PATH = "/oversight"
KEY_FILE = "oversight-session.key"
_HERE = Path(__file__).resolve().parent.parent


@jinja2.pass_context
def _when(context: jinja2.runtime.Context, value: Any) -> Any:
    return moment_html(value, context["zone"])


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates" / "oversight"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)
_ENV.filters["money"] = money_filter
_ENV.filters["when"] = _when
_ENV.globals["rule_names"] = RULE_NAMES
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

Session = SignedIn


# --- signed values --------------------------------------------------------------------

def session_key(state: State) -> bytes:
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

async def current(request: Request, db: AsyncSession) -> Session | None:
    return await dashboard_session.current(db, request.cookies.get(COOKIE), request.app.state.services.clock.now())


async def gate(request: Request, db: AsyncSession) -> Session | Response[str]:
    """The signed-in session; else the answer: no session (none, ended, expired, its key
    revoked) leads to sign-in, a session whose account may no longer use the dashboard
    (suspended, not a regulator) is ``403``."""
    found = await dashboard_session.lookup(db, request.cookies.get(COOKIE), request.app.state.services.clock.now())
    if found is None:
        return redirect(PATH)
    if found.refused is not None:
        return forbidden(request, found, found.refused)
    return found


def origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie(request: Request, name: str, value: str, max_age: int) -> Cookie:
    return Cookie(key=name, value=value, path=PATH, httponly=True, samesite="strict", secure=secure(request),
                  max_age=max_age)


def origin_ok(request: Request) -> bool:
    sent = request.headers.get("origin")
    if sent is None:
        return True
    return sent == origin(request)


def csrf_ok(request: Request, form: Any, want: str | None) -> bool:
    if not want:
        return False
    sent = form.get("csrf") if form is not None else None
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), want.encode()) and origin_ok(request)


# --- rendering ------------------------------------------------------------------------

def render(request: Request, name: str, status: int = 200, cookies: list[Cookie] | None = None,
           **values: Any) -> Response[str]:
    """A template, with the regulator's zone (``MARKET_TIMEZONE``) for its ``when`` filter."""
    values.setdefault("key_id", "")
    values.setdefault("zone", request.app.state.services.settings.zone)
    html = _ENV.get_template(name).render(**values)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers=HEADERS,
                    cookies=cookies or [])


def page(request: Request, session: Session, active: str, name: str, status: int = 200,
         **values: Any) -> Response[str]:
    values.setdefault("notice", request.query_params.get("notice"))
    return render(request, name, status=status, active=active, who=session.caller.account, csrf=session.csrf,
                  key_id=session.key_id, **values)


def forbidden(request: Request, session: Session | None, reason: str) -> Response[str]:
    return render(request, "refused.html", status=403, reason=reason,
                  who=session.caller.account if session else None, csrf=session.csrf if session else "",
                  key_id=session.key_id if session else "", active="", notice=None)


def redirect(to: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response("", status_code=303, headers={**HEADERS, "Location": to}, cookies=cookies or [])


def notice(text: str) -> str:
    return quote(text[:300], safe="")
