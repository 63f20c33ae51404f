"""The OpenAPI document at ``/schema/openapi.json`` and the docs page at ``/schema``.

The page is Swagger UI, served with its script, style sheet and icon by the market
itself (``market/static/swagger-ui``, copied unchanged from the npm package
``swagger-ui-dist``), so it works offline and loads nothing from elsewhere.

Litestar derives the document from the handlers' signatures; ``refine`` then says what
a signature cannot, so that the document describes exactly what the server accepts
and answers:

- who may call: operations with a ``caller`` or ``ctx`` need a token, those with a
  ``maybe_caller`` or ``maybe_ctx`` take one optionally, the others are public;
- raw request bodies that handlers read as a stream (``RAW_BODIES``);
- the ``Idempotency-Key`` header on every creating ``POST`` (status 201; DESIGN §2.7);
- the error responses (RFC 9457 problem documents) each operation can give;
- the form of ids in paths and queries (``prefix_`` and 26 base32 characters);
- what request models refuse: unknown members, blank text, and the checks their
  validators make (``PROPERTY_RULES``, ``MODEL_RULES``).
"""

from pathlib import Path
from typing import Any, get_args

import pycountry
from litestar import Litestar, Request, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from pydantic import BaseModel

from market import __version__
from market.core import idempotency
from market.core.errors import PROBLEM_JSON
from market.registry.categories import IDS as CATEGORY_IDS

DOCS_PATH = "/schema"
ASSETS_PATH = "/schema/assets"
ASSETS_DIR = Path(__file__).resolve().parents[1] / "static" / "swagger-ui"

# Request bodies that handlers read raw (``request.stream()`` / ``request.body()``),
# so Litestar cannot see them: (method, path) -> (media type, schema, description).
RAW_BODIES: dict[tuple[str, str], tuple[str, Schema, str]] = {
    ("put", "/v1/assets/{asset_id}/content"): (
        "application/octet-stream",
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, min_length=1),
        "the asset's content, any bytes (at least one; at most MARKET_MAX_UPLOAD_BYTES), streamed",
    ),
    ("post", "/v1/ledger/cosignatures"): (
        "text/plain",
        Schema(type=OpenAPIType.STRING),
        "the checkpoint note as served, with the witness's cosignature line appended (C2SP tlog-cosignature)",
    ),
}

# Error statuses that no rule below derives.
EXTRA_RESPONSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/ready"): (503,),
    ("get", "/v1/assets/{asset_id}/certificate"): (409,),  # no registration (yet)
    ("get", "/v1/assets/{asset_id}/transfer-document"): (409,),  # not transferable now
    ("get", "/v1/ledger/proofs/inclusion"): (404,),  # beyond the log
    ("get", "/v1/ledger/proofs/consistency"): (404,),
}

# Path and query parameters that hold an id of one kind (market/ids.py). A query filter
# such as ``provider`` is left out: any string is accepted there (and matches nothing).
ID_PARAMETERS = {"asset_id": "ast", "account_id": "acct", "key_id": "key", "token_id": "tok",
                 "objection_id": "obj", "transfer_id": "trf", "to": "acct"}

# Other query parameters whose form the server checks (unless their route says already).
_RIGHT = "(holding|use|operation)"
QUERY_PATTERNS = {
    "rights": (f"^[\\s,]*{_RIGHT}(\\s*,[\\s,]*{_RIGHT})*[\\s,]*$", "comma-separated rights; all three by default"),
    "cursor": ("^[A-Za-z0-9_-]{1,88}$", "the next_cursor of the previous page, as it was returned"),
}

_TAG = Schema(type=OpenAPIType.STRING, min_length=1, max_length=50, pattern="\\S")
_REASON_GIVEN = Schema(properties={"reason": Schema(type=OpenAPIType.STRING, min_length=1, pattern="\\S")},
                       required=["reason"])

# What request models check in their validators, which Litestar cannot see: JSON Schema
# keywords per (component, property). Keep in step with the models (a test checks that
# each named property exists). "non-null" drops the null branch of a property that may
# be left out but never sent as null.
PROPERTY_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("KeyCreate", "public_key"): {"pattern": "^[A-Za-z0-9+/]{43}=$"},
    ("AccountCreate", "uscc"): {"pattern": "^[0-9A-HJ-NP-RTUWXYa-hj-np-rtuwxy]{18}$"},
    ("AccountCreate", "jurisdiction"): {"enum": sorted(c.alpha_2 for c in pycountry.countries)},
    ("AssetCreate", "tags"): {"items": _TAG},
    ("AssetUpdate", "tags"): {"items": _TAG, "non-null": True},
    **{("AssetUpdate", name): {"non-null": True} for name in (
        "title", "description", "grade", "personal_info", "export_allowed", "source", "format")},
    ("AssetCreate", "category"): {"enum": list(CATEGORY_IDS)},
    ("AssetUpdate", "category"): {"enum": list(CATEGORY_IDS), "non-null": True},
}
# Rules between members: (component) -> JSON Schema keywords added to the object.
MODEL_RULES: dict[str, dict[str, Any]] = {
    "AccountCreate": {"all_of": [
        Schema(schema_if=Schema(properties={"kind": Schema(const="enterprise")}), then=Schema(required=["uscc"])),
        Schema(schema_if=Schema(properties={"kind": Schema(const="individual")}),
               then=Schema(properties={"uscc": Schema(type=OpenAPIType.NULL)})),
    ]},
    "AssetUpdate": {"min_properties": 1},
    "ReviewDecision": {"any_of": [
        Schema(properties={"decision": Schema(const="approve"), "override_conflict": Schema(const=False)}),
        _REASON_GIVEN,
    ]},
}
_ID_PATTERN = "^{prefix}_[0-9a-hjkmnp-tv-z]{{26}}$"

_ERRORS = {
    401: "Not authenticated: no token, or a token that is unknown or revoked",
    403: "Forbidden: the caller may not do this",
    404: "Not found (or not visible to the caller)",
    409: "Conflict: the object is not in a state that allows this, or changed meanwhile",
    413: "The request body is too large",
    422: "Invalid request: the problem's detail (and errors) say what to change",
    503: "Not ready",
}
_PROBLEM = Reference(ref="#/components/schemas/Problem")


def _problem_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["type", "title", "status", "detail"],
        properties={
            "type": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI, description="stable per kind of error"),
            "title": Schema(type=OpenAPIType.STRING),
            "status": Schema(type=OpenAPIType.INTEGER),
            "detail": Schema(type=OpenAPIType.STRING),
            "instance": Schema(type=OpenAPIType.STRING),
            "errors": Schema(
                type=OpenAPIType.ARRAY,
                items=Schema(type=OpenAPIType.OBJECT, properties={"field": Schema(type=OpenAPIType.STRING),
                                                                  "message": Schema(type=OpenAPIType.STRING)}),
            ),
        },
        description="An RFC 9457 problem document",
    )


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI with every asset served from ``ASSETS_PATH``; nothing from another origin."""

    def __init__(self, path: str | list[str] = "/swagger") -> None:
        super().__init__(path=path, favicon=f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">')

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        title = str(openapi_schema["info"]["title"]).replace("&", "&amp;").replace("<", "&lt;")
        spec_url = self.get_openapi_json_route(request)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
{self.favicon}
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
{self.style}
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script>
SwaggerUIBundle({{url: "{spec_url}", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  persistAuthorization: false}});
</script>
</body>
</html>
""".encode()


def config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Data-element market",
        version=__version__,
        path=DOCS_PATH,
        render_plugins=[SwaggerPage(path="/swagger")],
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", description="API token")},
        ),
        security=[{"bearer": []}],
    )


def assets_router() -> Router:
    """Serves the docs page's script, style sheet and icon."""
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR], name="docs-assets",
                                      include_in_schema=False)


def _handlers(app: Litestar) -> dict[tuple[str, str], Any]:
    found: dict[tuple[str, str], Any] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                for method in handler.http_methods:
                    found[(method.lower(), route.path_format or "/")] = handler
    return found


def _auth(handler: Any) -> str:
    names = set(handler.parsed_fn_signature.parameters)
    if names & {"caller", "ctx"}:
        return "required"
    return "optional" if names & {"maybe_caller", "maybe_ctx"} else "public"


def _respond(op: Operation, status: int) -> None:
    assert op.responses is not None
    if str(status) not in op.responses:
        op.responses[str(status)] = OpenAPIResponse(
            description=_ERRORS[status], content={PROBLEM_JSON: OpenAPIMediaType(schema=_PROBLEM)})


def _refine_operation(method: str, path: str, op: Operation, handler: Any) -> None:
    auth = _auth(handler) if handler is not None else "public"
    if auth == "public":
        op.security = []
    elif auth == "optional":
        op.security = [{}, {"bearer": []}]

    if (method, path) in RAW_BODIES:
        media_type, schema, description = RAW_BODIES[(method, path)]
        op.request_body = RequestBody(content={media_type: OpenAPIMediaType(schema=schema)}, required=True,
                                      description=description)

    data = handler.parsed_fn_signature.parameters.get("data") if handler is not None else None
    if data is not None and data.has_default and isinstance(op.request_body, RequestBody):
        op.request_body.required = False  # ``data: X | None = None``: the body may be left out

    params = [p for p in op.parameters or [] if isinstance(p, Parameter)]
    for p in params:
        prefix = ID_PARAMETERS.get(p.name)
        if prefix and p.param_in in ("path", "query") and isinstance(p.schema, Schema):
            _constrain_id(p.schema, prefix)
        if p.name in QUERY_PATTERNS and p.param_in == "query" and isinstance(p.schema, Schema):
            target = _branch(p.schema, OpenAPIType.STRING)
            if target.pattern is None and p.schema.pattern is None:
                target.pattern, described = QUERY_PATTERNS[p.name]
                p.description = p.description or described

    status = int(next(iter(op.responses or ["200"])))
    # The protocol's routes (/dsp/…) take no Idempotency-Key: the consumer's pid names the process.
    if method == "post" and status == 201 and not path.startswith("/dsp/"):
        params.append(Parameter(
            name=idempotency.HEADER, param_in="header", required=False,
            description="A key of the client's choice (a random UUID): a retry with the same key and body "
                        "gets the first answer again and creates nothing new (kept 24 hours)",
            schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=idempotency.MAX_KEY_LENGTH,
                          pattern="^[\\x20-\\x7e]+$"),
        ))
    op.parameters = list(params) or None  # a list of its own: the field is list[Parameter | Reference]

    responses = op.responses or {}
    # Litestar documents a 400 for validation errors; the market answers them with 422.
    default_400 = responses.get("400")
    if isinstance(default_400, OpenAPIResponse) and default_400.description.startswith("Bad request syntax"):
        del responses["400"]
    has_input = bool(params) or op.request_body is not None
    if auth != "public":
        _respond(op, 401)
    if auth == "required":
        _respond(op, 403)
    if "{" in path:
        _respond(op, 404)
    if method in ("post", "put", "patch", "delete"):
        _respond(op, 409)
    if op.request_body is not None:
        _respond(op, 413)
    if has_input:
        _respond(op, 422)
    for extra in EXTRA_RESPONSES.get((method, path), ()):
        _respond(op, extra)


def _constrain_id(schema: Schema, prefix: str) -> None:
    pattern = _ID_PATTERN.format(prefix=prefix)
    if schema.type == OpenAPIType.STRING:
        schema.pattern = pattern
        return
    for option in schema.one_of or []:  # optional query parameter: string or null
        if isinstance(option, Schema) and option.type == OpenAPIType.STRING:
            option.pattern = pattern


def _describe_request_models(document: OpenAPI, handlers: dict[tuple[str, str], Any]) -> None:
    """Request models that refuse unknown members say so (``additionalProperties: false``),
    and those that strip text say that blank text is refused."""
    schemas = document.components.schemas if document.components else None
    if not schemas:
        return
    seen: set[type] = set()
    todo = [a for h in handlers.values() for name, p in h.parsed_fn_signature.parameters.items() if name == "data"
            for a in (p.annotation, *get_args(p.annotation))]
    while todo:
        model = todo.pop()
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or model in seen:
            continue
        seen.add(model)
        schema = schemas.get(model.__name__)
        if model.model_config.get("extra") == "forbid" and isinstance(schema, Schema):
            schema.additional_properties = False
        if model.model_config.get("str_strip_whitespace") and isinstance(schema, Schema):
            # Text is stripped before its length is checked: blank text is no text.
            for prop in (schema.properties or {}).values():
                if isinstance(prop, Schema) and prop.min_length:
                    target = _branch(prop, OpenAPIType.STRING)
                    target.pattern = target.pattern or "\\S"
        for field in model.model_fields.values():
            todo.extend(a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type))


def _apply_model_rules(document: OpenAPI) -> None:
    schemas = document.components.schemas or {}
    for (component, name), rules in PROPERTY_RULES.items():
        model = schemas.get(component)
        prop = model.properties.get(name) if isinstance(model, Schema) and model.properties else None
        if not isinstance(prop, Schema):
            continue
        if rules.get("non-null"):
            _drop_null(prop)
        target = _branch(prop, OpenAPIType.ARRAY if "items" in rules else OpenAPIType.STRING)
        if target is not prop and target.type == OpenAPIType.ARRAY and prop.max_length is not None:
            # Litestar puts a list's max_length beside the oneOf as maxLength; it is maxItems.
            target.max_items, prop.max_length = prop.max_length, None
        for key, value in rules.items():
            if key != "non-null":
                setattr(target, key, value)
    for component, rules in MODEL_RULES.items():
        model = schemas.get(component)
        if isinstance(model, Schema):
            for key, value in rules.items():
                setattr(model, key, value)


def _drop_null(prop: Schema) -> None:
    """Leave out null from a property's possible values."""
    if prop.one_of:
        prop.one_of = [b for b in prop.one_of if not (isinstance(b, Schema) and b.type == OpenAPIType.NULL)]
    if isinstance(prop.type, list):
        kinds = [t for t in prop.type if t != OpenAPIType.NULL]
        prop.type = kinds[0] if len(kinds) == 1 else kinds
    if prop.enum:
        prop.enum = [v for v in prop.enum if v is not None]


def _branch(schema: Schema, kind: OpenAPIType) -> Schema:
    """The branch of a property (itself, or one of its ``oneOf``) that holds values of ``kind``."""
    for option in schema.one_of or []:
        if isinstance(option, Schema) and option.type == kind:
            return option
    return schema


def refine(app: Litestar) -> OpenAPI:
    """Build the app's OpenAPI document now and complete it in place (see the module's docstring)."""
    document = app.openapi_schema
    handlers = _handlers(app)
    if document.components.schemas is None:
        document.components.schemas = {}
    # Litestar replaces components.schemas with the ones it generates, so add ours here.
    document.components.schemas["Problem"] = _problem_schema()
    _describe_request_models(document, handlers)
    _apply_model_rules(document)
    for path, item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            op = getattr(item, method, None)
            if op is not None:
                _refine_operation(method, path, op, handlers.get((method, path)))
    return document


__all__ = ["ASSETS_PATH", "DOCS_PATH", "RAW_BODIES", "SwaggerPage", "assets_router", "config", "refine"]
