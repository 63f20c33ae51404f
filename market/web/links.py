"""The market's own absolute URLs: under ``MARKET_PUBLIC_URL`` when it is set (the
address the world uses, behind any proxy), else under the request's base URL."""

from litestar import Request


def public_base(request: Request) -> str:
    """The base URL, without a trailing slash: ``https://exchange.example``."""
    services = getattr(request.app.state, "services", None)
    configured = services.settings.public_url if services is not None else ""
    return str(configured or request.base_url).rstrip("/")


__all__ = ["public_base"]
