"""``GET /problems/{kind}`` and ``GET /problems``: what each problem type means.

A problem's ``type`` (``<base URL>/problems/<kind>``) is an address a person can open:
a browser gets a short page (``text/html``, the default), a program that asks for JSON
(``Accept: application/json``) gets ``{kind, title, status, explanation, what_to_do,
doc}``. The entries are in ``market.web.problem_kinds``; an unknown kind is ``404``.
"""

from html import escape
from typing import Any

from litestar import Request, Response, get

from market.core.errors import NotFound, problem_type
from market.web.links import public_base
from market.web.problem_kinds import PROBLEM_KINDS, ProblemKind

HTML = "text/html"  # Litestar adds the charset
JSON = "application/json"

STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;color:#1b1b1b}"
         "code{background:#f2f2f2;padding:0 .2em}dt{font-weight:600;margin-top:.8em}"
         "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left}")


def wants_json(request: Request) -> bool:
    """Whether the client asked for JSON rather than a page (HTML when it does not say)."""
    return request.accept.best_match([HTML, JSON, "application/problem+json"], default="text/html") != "text/html"


def as_json(entry: ProblemKind, base: str) -> dict[str, Any]:
    return {"kind": entry.kind, "type": problem_type(entry.kind, base), "title": entry.title, "status": entry.status,
            "explanation": entry.explanation, "what_to_do": entry.what_to_do, "doc": doc_link(entry, base)}


def doc_link(entry: ProblemKind, base: str) -> str:
    page, _, anchor = entry.doc.partition("#")
    return f"{base}/docs/{page}#{anchor}"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(title)}</title><style>{STYLE}</style>'
            f"</head><body>{body}</body></html>\n")


def problem_page(entry: ProblemKind, base: str) -> str:
    return _page(f"{entry.title} ({entry.kind})", (
        f"<p><a href=\"{escape(base)}/problems\">Problems</a></p>"
        f"<h1>{escape(entry.title)}</h1>"
        f"<p>Problem type <code>{escape(problem_type(entry.kind, base))}</code>, HTTP status {entry.status}.</p>"
        f"<dl><dt>What it means</dt><dd>{escape(entry.explanation)}</dd>"
        f"<dt>What to do</dt><dd>{escape(entry.what_to_do)}</dd></dl>"
        f"<p>The problem's <code>detail</code> says what happened in this case. More in "
        f"<a href=\"{escape(doc_link(entry, base))}\">the contract</a>.</p>"))


def index_page(base: str) -> str:
    rows = "".join(f"<tr><td><a href=\"{escape(base)}/problems/{escape(p.kind)}\"><code>{escape(p.kind)}</code></a></td>"
                   f"<td>{p.status}</td><td>{escape(p.title)}</td></tr>" for p in sorted(PROBLEM_KINDS.values(),
                                                                                        key=lambda p: p.kind))
    return _page("Problems", (
        "<h1>Problems</h1><p>Every error of the market is an RFC 9457 problem document whose <code>type</code> "
        "is one of these addresses. Branch on the type, not on the English detail.</p>"
        f"<table><tr><th>kind</th><th>status</th><th>title</th></tr>{rows}</table>"))


@get("/problems", tags=["operations"], summary="Every problem type the market answers with", media_type=HTML)
async def problems_index(request: Request) -> Response[Any]:
    base = public_base(request)
    if wants_json(request):
        items = [as_json(p, base) for p in sorted(PROBLEM_KINDS.values(), key=lambda p: p.kind)]
        return Response({"items": items}, media_type=JSON)
    return Response(index_page(base), media_type=HTML)


@get("/problems/{kind:str}", tags=["operations"], media_type=HTML,
     summary="What a problem type means and what to do (HTML, or JSON with Accept: application/json)")
async def problem_kind(request: Request, kind: str) -> Response[Any]:
    entry = PROBLEM_KINDS.get(kind)
    if entry is None:
        raise NotFound(f"no problem type {kind!r}; GET /problems lists them")
    base = public_base(request)
    if wants_json(request):
        return Response(as_json(entry, base), media_type=JSON)
    return Response(problem_page(entry, base), media_type=HTML)


PROBLEM_ROUTES = [problems_index, problem_kind]

__all__ = ["PROBLEM_ROUTES", "as_json", "problem_page", "wants_json"]
