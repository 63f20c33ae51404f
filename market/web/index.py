"""``GET /``: the market introduces itself — its name, version, and where everything
a newcomer (a person, a harvester, an auditor's script) starts from is. The DCAT
catalog's ``foaf:homepage`` points here. Links are absolute (``market.web.links``)."""

from typing import Any

from litestar import Request, get

from market import __version__
from market.core.services import Services
from market.web.links import public_base


def links(base: str) -> dict[str, str]:
    return {
        "self": f"{base}/",
        "docs": f"{base}/schema",
        "openapi": f"{base}/schema/openapi.json",
        "contract": f"{base}/docs/api",
        "ledger_formats": f"{base}/docs/ledger",
        "catalog": f"{base}/v1/catalog",
        "listings": f"{base}/v1/listings",
        "ledger_key": f"{base}/v1/ledger/key",
        "ledger_checkpoint": f"{base}/v1/ledger/checkpoint",
        "problems": f"{base}/problems",
        "health": f"{base}/health",
    }


@get("/", tags=["operations"], summary="The market's index: name, version, links to the docs, catalog and ledger")
async def market_index(request: Request, services: Services) -> dict[str, Any]:
    return {"name": services.settings.name, "version": __version__, "links": links(public_base(request))}


__all__ = ["links", "market_index"]
