"""``GET /docs/api`` and ``GET /docs/ledger``: the written contract (``docs/API.md``)
and the ledger's formats (``docs/LEDGER.md``) as pages, so that the index and the
problem pages can link to a section (``#orders``). Markdown when asked for
(``Accept: text/markdown``); the files are read from the repository's ``docs/`` once
per process. A deployment without ``docs/`` answers ``404``.
"""

import functools
import re
from html import escape
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from markdown_it import MarkdownIt

from market.core.errors import NotFound

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
PAGES = {"api": ("API.md", "The market's HTTP API"), "ledger": ("LEDGER.md", "The audit ledger's formats")}
STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#1b1b1b}"
         "code{background:#f2f2f2;padding:0 .2em}pre{background:#f2f2f2;padding:.6em;overflow-x:auto}"
         "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3em .5em;vertical-align:top}")


def slug(heading: str) -> str:
    """A heading's anchor: its ASCII words, lower case, joined by '-' ("Orders (交易)" → "orders")."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


@functools.cache
def markdown(name: str) -> str:
    path = DOCS_DIR / PAGES[name][0]
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"this deployment does not ship {PAGES[name][0]}") from None


@functools.cache
def html(name: str) -> str:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown(name))
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            token.attrSet("id", slug(tokens[i + 1].content))
    body = md.renderer.render(tokens, md.options, {})
    title = escape(PAGES[name][1])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{title}</title><style>{STYLE}</style></head>'
            f"<body>{body}</body></html>\n")


def anchors(name: str) -> set[str]:
    """Every anchor of a page (for links into it)."""
    return set(re.findall(r'<h[1-6] id="([^"]+)"', html(name)))


@get("/docs/{name:str}", tags=["operations"], media_type="text/html",
     summary="The written contract (api) or the ledger's formats (ledger), as a page or as Markdown")
async def doc_page(request: Request, name: str) -> Response[Any]:
    if name not in PAGES:
        raise NotFound(f"no page {name!r}; there are {', '.join(sorted(PAGES))}")
    if request.accept.best_match(["text/html", "text/markdown"], default="text/html") == "text/markdown":
        return Response(markdown(name), media_type="text/markdown")
    return Response(html(name), media_type="text/html")


__all__ = ["DOCS_DIR", "PAGES", "anchors", "doc_page", "html", "slug"]
