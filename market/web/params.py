"""Every missing or invalid parameter of a request, named at once (API.md "Conventions":
validation errors list the offending fields).

Litestar stops at the first required parameter that is missing (one message, no
fields), and names an invalid one by its Python name rather than the one in the URL
(``start`` for ``?from=``). When a request fails validation, ``parameter_errors`` goes
over the route's query, header and cookie parameters itself — each missing one, each
one whose value does not convert to its type within its bounds — with the names a
client wrote. Only failing requests pay for it.
"""

from typing import Any

from litestar import Request
from litestar.constants import RESERVED_KWARGS
from litestar.params import ParameterKwarg
from msgspec import convert


def _source(name: str, kwarg: ParameterKwarg | None) -> tuple[str, str]:
    """Where the parameter ``name`` comes from (query, header, cookie) and its name there."""
    if kwarg is not None and kwarg.header:
        return "header", kwarg.header.lower()
    if kwarg is not None and kwarg.cookie:
        return "cookie", kwarg.cookie
    return "query", (kwarg.query if kwarg is not None and kwarg.query else name)


def parameter_errors(request: Request[Any, Any, Any]) -> list[dict[str, str]]:
    """``[{"field", "message"}]``: the route's parameters missing or invalid in ``request``."""
    handler = request.scope.get("route_handler")
    if handler is None:  # not routed (yet): nothing to go over
        return []
    skip = RESERVED_KWARGS | set(handler.resolve_dependencies()) | set(request.path_params)
    types = handler.signature_model.__annotations__  # with the bounds of Parameter(ge=…, le=…)

    def decode(target: Any, value: Any) -> Any:
        return handler.default_deserializer(target, value)

    errors = []
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if name in skip or name not in types or (kwarg is not None and not isinstance(kwarg, ParameterKwarg)):
            continue  # the body, a dependency, the request itself, a path parameter
        source, alias = _source(name, kwarg)
        given: Any = {"query": request.query_params, "header": request.headers, "cookie": request.cookies}[source]
        if alias not in given:
            if not (field.has_default or field.is_optional):
                errors.append({"field": alias, "message": f"missing (a required {source} parameter)"})
            continue
        value = given.getall(alias) if field.is_non_string_sequence and source == "query" else given[alias]
        try:
            convert(value, types[name], strict=False, dec_hook=decode, str_keys=True)
        except Exception as exc:  # noqa: BLE001 - any failure to convert is the client's value
            errors.append({"field": alias, "message": str(exc).split(" - ", maxsplit=1)[0]})
    return errors
