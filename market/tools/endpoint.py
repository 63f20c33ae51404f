"""Where the commands that talk to a market find it, and what they say when it is not there.

``MARKET_BASE_URL``, else the market ``market serve`` starts on this machine with the
same environment: ``http://{MARKET_HOST}:{MARKET_PORT}``, defaults 127.0.0.1 and 8000
(a wildcard listen address, 0.0.0.0 or ::, is reached on the loopback). Stdlib only:
the client commands start without the server's libraries.
"""

import os
import re
from collections.abc import Mapping

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # listen-everywhere addresses


class EndpointError(ValueError):
    """An environment that names no usable market address; the message says which variable."""


def default_base_url(environ: Mapping[str, str] = os.environ) -> str:
    """The market's URL when none is given on the command line."""
    given = environ.get("MARKET_BASE_URL", "").strip()
    if given:
        return given.rstrip("/")
    host = environ.get("MARKET_HOST", DEFAULT_HOST).strip()
    host = _WILDCARDS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port_text = environ.get("MARKET_PORT", "").strip() or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EndpointError(f"MARKET_PORT is {port_text!r}, not a port number (1-65535); "
                            "set it, or give --base-url or MARKET_BASE_URL")
    return f"http://{host}:{int(port_text)}"


HOW = "Give --base-url, or set MARKET_BASE_URL (or MARKET_HOST and MARKET_PORT)"


def unreachable(url: str, exc: BaseException, how: str = HOW) -> str:
    """One line: the URL tried, why it could not be reached, and ``how`` to name another."""
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", (str(exc).strip().splitlines() or [""])[0]) or type(exc).__name__
    return f"cannot reach the market at {url.rstrip('/')} ({reason.rstrip('.').lower()}): is it running there? {how}"


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "HOW", "EndpointError", "default_base_url", "unreachable"]
