"""The Litestar application factory: ``create_app(settings) -> Litestar``."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.routes import HTTPRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from ledger.errors import LedgerError
from market import __version__
from market.accounts.routes import AccountController
from market.accounts.schemas import Role
from market.core import migrations
from market.core.clock import Clock
from market.core.config import Settings
from market.core.context import Ctx
from market.core.errors import PROBLEM_JSON, DomainError, NotAuthenticated, absolute_type, ledger_problem, problem
from market.core.logs import configure_logging, log, request_context_middleware
from market.core.services import Services
from market.dsp.catalog_routes import CATALOG_ROUTES
from market.dsp.negotiation_routes import NEGOTIATION_ROUTES
from market.dsp.transfer_routes import TRANSFER_ROUTES
from market.listings.routes import ListingController, dcat_catalog
from market.notifications.routes import NOTIFICATION_ROUTES
from market.oversight.action_routes import ACTION_ROUTES
from market.oversight.dashboard import dashboard_router
from market.oversight.document_routes import oversight_documents
from market.oversight.stats_routes import STATS_ROUTES
from market.registry.routes import REFERENCE_ROUTES, AssetController, ObjectionController, TransferController
from market.registry.table_routes import TABLE_ROUTES
from market.storage import BlobCorrupted, BlobNotFound, BlobStoreUnavailable
from market.trading.delivery_routes import order_content, order_content_proof, order_deliveries
from market.trading.money_routes import MONEY_ROUTES
from market.trading.routes import OrderController, order_document, stripe_webhook
from market.usage.routes import USAGE_ROUTES
from market.web import openapi
from market.web.auth import Caller, provide_caller, provide_optional_caller
from market.web.dependencies import POINT_READS, resolve_in_turn
from market.web.docs import doc_page
from market.web.head import answer_head
from market.web.index import market_index
from market.web.ledger_routes import LedgerController, TlogController
from market.web.links import public_base
from market.web.params import parameter_errors
from market.web.problems import PROBLEM_ROUTES
from market.web.ratelimit import rate_limit_middleware
from market.web.requests import MarketRequest
from market.wiring.services import close_services, open_services
from market.wiring.tasks import run_background, run_refresh
from market.wiring.worker import quiet_collector


def _problem_response(request: Request, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    """The problem document, its type made absolute (``<base URL>/problems/<kind>``, a
    page that says what it means: ``market.web.problems``)."""
    return Response(absolute_type(body, public_base(request)), status_code=body["status"], media_type=PROBLEM_JSON,
                    headers=headers)


def handle_domain_error(request: Request, exc: DomainError) -> Response[Any]:
    return _problem_response(request, exc.problem(instance=request.url.path), exc.headers)


def handle_ledger_error(request: Request, exc: LedgerError) -> Response[Any]:
    body = ledger_problem(exc, instance=request.url.path)
    if body["status"] >= 500:
        log.exception("ledger error", path=request.url.path)
    return _problem_response(request, body)


def handle_validation_error(request: Request, exc: ValidationException) -> Response[Any]:
    reported = [item for item in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(item, dict)]
    # Every missing or invalid parameter at once, by its name in the URL (web/params.py);
    # then the body's errors as reported.
    errors = parameter_errors(request)
    if errors:
        reported = [item for item in reported if item.get("source") == "body" or not item.get("key")]
    errors += [{"field": item.get("key") or item.get("source") or "body", "message": item.get("message", "")}
               for item in reported]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or (exc.detail or "invalid request")
    return _problem_response(request, problem(422, "validation-error", "Invalid request", detail, errors=errors,
                                              instance=request.url.path))


# The kinds of the framework's own HTTP errors (routing, bodies); any other status is http-error.
HTTP_KINDS = {400: "bad-request", 401: "not-authenticated", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type", 429: "too-many-requests"}


def handle_http_error(request: Request, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status == 400 and (isinstance(exc.__cause__, SerializationException) or "json" in (exc.detail or "").lower()):
        # A body that does not decode (malformed, truncated) is a validation error.
        return _problem_response(request, problem(422, "validation-error", "Invalid request", exc.detail, errors=[],
                                                  instance=request.url.path))
    # Keep the exception's headers: a 405 carries Allow (RFC 9110 §15.5.6).
    return _problem_response(request, problem(status, HTTP_KINDS.get(status, "http-error"), exc.detail or "Error",
                                              exc.detail or "", instance=request.url.path), headers=exc.headers or None)


# Seconds a client is asked to wait before asking again for content the store did not give.
CONTENT_RETRY_AFTER = 30


def handle_content_unavailable(request: Request, exc: BlobNotFound | BlobStoreUnavailable) -> Response[Any]:
    """A blob the store does not have, or a store that does not answer: the operator's to
    fix (a store being restored, a network partition), so 503 and a retry hint. Raised
    before any of the body is sent (a download reads its first piece first)."""
    log.error("content unavailable", path=request.url.path, error=str(exc))
    return _problem_response(request, problem(503, "content-unavailable", "Content unavailable",
                                              "the content cannot be read from the blob store now; it has been "
                                              "logged", instance=request.url.path),
                             headers={"Retry-After": str(CONTENT_RETRY_AFTER)})


def handle_content_corrupted(request: Request, exc: BlobCorrupted) -> Response[Any]:
    """A blob that fails its authentication or commitment: never served, and no retry
    will mend it."""
    log.error("content corrupted", path=request.url.path, error=str(exc))
    return _problem_response(request, problem(500, "content-corrupted", "Content corrupted",
                                              "the stored content does not match its commitment; it is not served "
                                              "and the failure has been logged", instance=request.url.path))


def handle_crash(request: Request, exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path)
    return _problem_response(request, problem(500, "internal-error", "Internal error",
                                              "the server failed to handle this request; it has been logged",
                                              instance=request.url.path))


def exact_allow_middleware(app: Any) -> Any:
    """Answer ``OPTIONS`` with every method of the path in ``Allow``.

    Litestar 2 rebuilds a path's route when a later handler adds a method to it, but
    keeps the first route's automatic OPTIONS handler, which then lists only the
    methods registered first (``/v1/accounts`` said ``GET, OPTIONS``, leaving out POST).
    """
    methods_by_path: dict[str, set[str]] = {}

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await app(scope, receive, send)
            return
        if not methods_by_path:
            for route in scope["litestar_app"].routes:
                if isinstance(route, HTTPRoute):
                    methods_by_path.setdefault(route.path_format, set()).update(route.methods)
        methods = methods_by_path.get(scope.get("path_template", ""))
        allow = ", ".join(sorted(methods)).encode() if methods else None

        async def send_allow(message: dict[str, Any]) -> None:
            if allow and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allow)]
            await send(message)

        await app(scope, receive, send_allow)

    return middleware


_READS = frozenset({"GET", "HEAD"})


async def provide_db(request: Request, state: State) -> AsyncIterator[AsyncSession]:
    """A session for the request: a read session for GET and HEAD (no write lock on
    SQLite; writing raises; in the loop's thread for a ``POINT_READS`` route), a writing
    one otherwise."""
    services: Services = state.services
    if request.method not in _READS:
        maker = services.sessionmaker
    elif request.route_handler.opt.get(POINT_READS):
        maker = services.point_read_sessionmaker
    else:
        maker = services.read_sessionmaker
    session = maker()
    try:
        yield session
    finally:
        if session.in_transaction():
            async with session:  # closed in a task of its own at exit: even a cancelled request ends it
                await session.rollback()
        else:
            # Committed, or never used: no connection is held and closing does no I/O. Closed
            # here, not through the context manager's task (a task and a loop turn per request).
            session.sync_session.close()


def provide_services(state: State) -> Services:
    """The market's services (built in the lifespan: ``market.wiring.services``)."""
    services: Services = state.services
    return services


def provide_settings(state: State) -> Settings:
    return provide_services(state).settings


def provide_ctx(state: State, caller: Caller) -> Ctx:
    """The context of an authenticated request (401 without a valid token)."""
    return Ctx.of(provide_services(state), caller)


def provide_optional_ctx(state: State, maybe_caller: Caller | None) -> Ctx:
    """The context of a request open to anonymous readers (a bad token is still 401)."""
    return Ctx.of(provide_services(state), maybe_caller)


@get("/health", media_type=MediaType.JSON, include_in_schema=True, tags=["operations"])
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


@get("/ready", media_type=MediaType.JSON, tags=["operations"])
async def ready(request: Request, state: State) -> Response[Any]:
    """The database is reachable and its schema is at the newest migration."""
    try:
        async with state.services.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await migrations.migrations_current(state.services.read_engine)
    except Exception as exc:  # noqa: BLE001 - any database failure means not ready
        log.warning("not ready", error=type(exc).__name__)
        return _problem_response(request, problem(503, "not-ready", "Not ready", "the database is not reachable"))
    if not current:
        return _problem_response(request, problem(503, "not-ready", "Not ready",
                                                  "database migrations are not current; run 'market db upgrade'"))
    return Response({"status": "ready"})


@get("/metrics", media_type="text/plain", tags=["operations"])
async def metrics(request: Request, state: State, maybe_caller: Caller | None) -> Response[bytes]:
    """Prometheus text exposition: for staff tokens (operator, regulator) and for the
    addresses in ``MARKET_METRICS_ALLOW``; 401 without a token, 403 for other accounts."""
    client = request.scope.get("client")
    if not metrics_allowed(state.services.settings.metrics_networks, client[0] if client else None):
        if maybe_caller is None:
            raise NotAuthenticated("metrics need a staff token, or an address listed in MARKET_METRICS_ALLOW",
                                   kind="missing-token")
        maybe_caller.require(Role.operator, Role.regulator)
    # CONTENT_TYPE_LATEST carries its charset; as a media type Litestar would append a second one.
    return Response(generate_latest(), headers={"content-type": CONTENT_TYPE_LATEST})


def metrics_allowed(networks: "list[IPv4Network | IPv6Network]", address: str | None) -> bool:
    """Whether ``address`` (the ASGI client's) is in one of ``networks``."""
    if not networks or not address:
        return False
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


SHUTDOWN_WAIT = 30.0  # seconds the background work has to stop when the app shuts down


def create_app(settings: Settings, *, clock: Clock | None = None, freeze_heap: bool = False) -> Litestar:
    """Build the app. The database must already be migrated (``market db upgrade``).

    ``clock`` decides what "now" is for business time (notice periods); tests pass a
    clock they can move forward. ``freeze_heap``: ``quiet_collector`` once started (a
    served process; not tests, which build app after app in one process).
    """
    configure_logging(settings.log_level)
    resolve_in_turn()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await open_services(settings, clock=clock)
        app.state.services = services
        background: asyncio.Task[None] | None = None
        if settings.background_tasks:
            # The market's own work here, unless it runs elsewhere (market.wiring.worker).
            background = asyncio.create_task(run_refresh(services) if settings.worker == "elsewhere"
                                             else run_background(services))
        if freeze_heap:
            quiet_collector()
        try:
            yield
        finally:
            if background is not None:
                background.cancel()
                # Bounded: a shutdown never hangs on background work that will not end.
                await asyncio.wait({background}, timeout=SHUTDOWN_WAIT)
                if not background.done():
                    log.error("background work did not stop on shutdown", waited=SHUTDOWN_WAIT)
            await close_services(services)

    app = Litestar(
        route_handlers=[
            market_index, health, ready, metrics, doc_page, *PROBLEM_ROUTES, AccountController, LedgerController,
            TlogController, AssetController, ObjectionController, TransferController, *REFERENCE_ROUTES,
            ListingController, dcat_catalog,
            OrderController, order_document, stripe_webhook, order_content, order_content_proof, order_deliveries,
            *MONEY_ROUTES, oversight_documents, *STATS_ROUTES, *ACTION_ROUTES, dashboard_router(),
            openapi.assets_router(), *NOTIFICATION_ROUTES, *TABLE_ROUTES, *USAGE_ROUTES,
            *CATALOG_ROUTES, *NEGOTIATION_ROUTES, *TRANSFER_ROUTES,
        ],
        lifespan=[lifespan],
        dependencies={
            "db": Provide(provide_db),
            "services": Provide(provide_services, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "caller": Provide(provide_caller),
            "maybe_caller": Provide(provide_optional_caller),
            "ctx": Provide(provide_ctx, sync_to_thread=False),
            "maybe_ctx": Provide(provide_optional_ctx, sync_to_thread=False),
        },
        exception_handlers={
            DomainError: handle_domain_error,
            LedgerError: handle_ledger_error,
            BlobNotFound: handle_content_unavailable,
            BlobStoreUnavailable: handle_content_unavailable,
            BlobCorrupted: handle_content_corrupted,
            ValidationException: handle_validation_error,
            HTTPException: handle_http_error,
            Exception: handle_crash,
        },
        middleware=[request_context_middleware, rate_limit_middleware, exact_allow_middleware],
        request_max_body_size=settings.max_body_bytes,
        request_class=MarketRequest,
        openapi_config=openapi.config(),
        debug=False,
    )
    openapi.refine(app)
    # Before the router: HEAD is answered as GET without a body on every route (market.web.head).
    app.asgi_handler = answer_head(app.asgi_handler)
    return app


def app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory`` (used by ``market serve``)."""
    return create_app(Settings(), freeze_heap=True)
