"""``market serve`` as a real process for the tests that need one (webhooks from
localstripe, the browser, the replay over HTTP): a free port, an operator made
beforehand, the server's log in a file (an unread pipe could block a chatty server)."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from market.core.config import Settings
from market.wiring.bootstrap import create_staff_account
from tests.conftest import wait_until_serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:<port>
    operator_token: str
    log: Path  # the server's standard error


def serve_environment(settings: Settings, **env: str) -> dict[str, str]:
    """The environment of a ``market serve`` process on ``settings``' database and data
    directory, quick to integrate and without rate limits; ``env`` adds or overrides."""
    return {**os.environ, "MARKET_DATA_DIR": str(settings.data_dir),
            "MARKET_DATABASE_URL": settings.database_url, "MARKET_LOG_LEVEL": "WARNING",
            "MARKET_NOTICE_PERIOD": "0", "MARKET_RATE_LIMIT_PER_MINUTE": "0",
            "MARKET_RATE_LIMIT_SIGNUPS_PER_HOUR": "0", "MARKET_LEDGER_INTEGRATE_INTERVAL": "0.05",
            "MARKET_LEDGER_ORIGIN": settings.ledger_origin,
            "MARKET_REGULATOR_AUTHORITY": settings.regulator_authority, **env}


@contextlib.asynccontextmanager
async def serving(settings: Settings, **env: str) -> AsyncIterator[Served]:
    """Serve ``settings``' database and data directory; ``env`` adds ``MARKET_*`` variables
    (e.g. ``MARKET_CLOCK_INTERVAL="1"``)."""
    token = await create_staff_account(settings, "Operator", "operator")
    port = free_port()
    environment = serve_environment(settings, **env)
    log = settings.data_dir / "serve.log"
    with open(log, "w") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "market.tools.cli", "serve", "--port", str(port)], env=environment,
                                stdout=subprocess.DEVNULL, stderr=errors, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                await asyncio.to_thread(wait_until_serving, f"{base}/health", proc)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; its log: {log.read_text()[-2000:]}") from None
            yield Served(base, token, log)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
