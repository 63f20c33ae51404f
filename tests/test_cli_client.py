"""The commands that talk to a market from outside (``market client download``,
``market oversight replay``), run as a user would: where they look for the market when
told nothing (MARKET_BASE_URL, else MARKET_HOST and MARKET_PORT), what they say when
nothing listens there, and that they (and ``--help``, ``version``) start without the
server's libraries."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from market.tools.endpoint import EndpointError, default_base_url

MARKET = [sys.executable, "-m", "market.tools.cli"]
VKEY = "x.example/log+ede02a51+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
SERVER_LIBRARIES = ("sqlalchemy", "sqlmodel", "alembic", "litestar", "uvicorn", "asyncpg", "aiosqlite",
                    "pydantic_settings")


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any MARKET_* setting, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}, **extra}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MARKET, *args], env=env, capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the default URL ------------------------------------------------------------------------


@pytest.mark.parametrize("environ, url", [
    ({}, "http://127.0.0.1:8000"),
    ({"MARKET_PORT": "9100"}, "http://127.0.0.1:9100"),
    ({"MARKET_HOST": "market.internal", "MARKET_PORT": "80"}, "http://market.internal:80"),
    ({"MARKET_HOST": "0.0.0.0", "MARKET_PORT": "8000"}, "http://127.0.0.1:8000"),  # what the Dockerfile sets
    ({"MARKET_HOST": "::"}, "http://[::1]:8000"),
    ({"MARKET_HOST": "fd00::5"}, "http://[fd00::5]:8000"),
    ({"MARKET_BASE_URL": "https://market.example/", "MARKET_PORT": "9100"}, "https://market.example"),
    ({"MARKET_BASE_URL": "  ", "MARKET_PORT": "9100"}, "http://127.0.0.1:9100"),
])
def test_the_default_url_is_the_local_market(environ: dict[str, str], url: str) -> None:
    assert default_base_url(environ) == url


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "80.5"])
def test_a_port_that_is_no_port_is_refused(port: str) -> None:
    with pytest.raises(EndpointError, match="MARKET_PORT"):
        default_base_url({"MARKET_PORT": port})
    result = run(clean_env(MARKET_PORT=port, MARKET_TOKEN="t"), "client", "download", "ord_x", "--out", os.devnull)
    assert result.returncode == 2 and "MARKET_PORT" in result.stderr and "Traceback" not in result.stderr


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"title": "Not Found", "detail": "no such order"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listening() -> Iterator[tuple[int, list[tuple[str, str | None]]]]:
    """A server on a free port that answers every GET 404 and records it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_download_goes_to_market_port(listening: tuple[int, list[tuple[str, str | None]]], tmp_path: Path) -> None:
    port, seen = listening
    out = tmp_path / "content.bin"
    result = run(clean_env(MARKET_PORT=str(port), MARKET_TOKEN="mkt_test"), "client", "download", "ord_1",
                 "--out", str(out), "--quiet")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: GET /v1/orders/ord_1/content: 404 Not Found: no such order"
    assert seen == [("/v1/orders/ord_1/content", "Bearer mkt_test")]
    assert not out.exists()
    # MARKET_BASE_URL wins over MARKET_PORT, and --base-url over both.
    env = clean_env(MARKET_PORT="1", MARKET_BASE_URL=f"http://127.0.0.1:{port}", MARKET_TOKEN="mkt_test")
    assert run(env, "client", "download", "ord_2", "--out", str(out), "--quiet").returncode == 2
    env = clean_env(MARKET_BASE_URL="http://127.0.0.1:1", MARKET_TOKEN="mkt_test")
    assert run(env, "client", "download", "ord_3", "--out", str(out), "--quiet", "--base-url",
               f"http://127.0.0.1:{port}/").returncode == 2
    assert [path for path, _ in seen] == [f"/v1/orders/ord_{i}/content" for i in (1, 2, 3)]


# -- nothing listening -------------------------------------------------------------------------


@pytest.mark.parametrize("how", [[], ["--verify"], ["--range", "0-9"]])
def test_download_from_nothing_is_one_line_naming_the_url(tmp_path: Path, how: list[str]) -> None:
    port = free_port()
    out = tmp_path / "content.bin"
    result = run(clean_env(MARKET_PORT=str(port), MARKET_TOKEN="t"), "client", "download", "ord_1", "--out",
                 str(out), "--quiet", *how)
    assert result.returncode == 2
    assert result.stderr == (f"error: cannot reach the market at http://127.0.0.1:{port} (connection refused): "
                             "is it running there? Give --base-url, or set MARKET_BASE_URL (or MARKET_HOST and "
                             "MARKET_PORT)\n")
    assert result.stdout == "" and not out.exists()


def test_replay_of_nothing_is_one_line_naming_the_url() -> None:
    port = free_port()
    for env, args in [(clean_env(MARKET_PORT=str(port), MARKET_TOKEN="t"), []),
                      (clean_env(MARKET_TOKEN="t"), [f"http://127.0.0.1:{port}/"])]:
        result = run(env, "oversight", "replay", *args, "--vkey", VKEY)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"error: cannot reach the market at http://127.0.0.1:{port} "
                                        "(connection refused)")
        assert result.stderr.endswith("nothing was concluded\n")


def test_replay_needs_a_token() -> None:
    result = run(clean_env(MARKET_PORT=str(free_port())), "oversight", "replay", "--vkey", VKEY)
    assert result.returncode == 2 and "MARKET_TOKEN" in result.stderr and "Traceback" not in result.stderr


# -- starting fast -----------------------------------------------------------------------------

_LOADED = """
import json, sys
from market.tools.cli import main
try:
    main(sys.argv[2:], prog_name="market")
except SystemExit:
    pass
with open(sys.argv[1], "w") as f:
    json.dump(sorted(sys.modules), f)
"""


@pytest.mark.parametrize("args", [
    ["client", "uscc"], ["--help"], ["version"], ["client", "--help"], ["client", "download", "--help"],
    ["client", "keygen", "--out", "{tmp}/k.pem"], ["oversight", "replay", "--help"],
    ["client", "download", "ord_1", "--out", "{tmp}/c.bin", "--base-url", "http://127.0.0.1:{port}"],
    ["oversight", "replay", "http://127.0.0.1:{port}", "--vkey", VKEY],
])
def test_client_commands_load_no_server_library(args: list[str], tmp_path: Path) -> None:
    port = free_port()
    argv = [a.format(tmp=tmp_path, port=port) for a in args]
    loaded = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", _LOADED, str(loaded), *argv], env=clean_env(MARKET_TOKEN="t"),
                            capture_output=True, text=True, timeout=120)
    assert loaded.exists(), result.stderr
    modules = json.loads(loaded.read_text())
    assert "market.tools.cli" in modules
    assert [m for m in modules if m.split(".")[0] in SERVER_LIBRARIES] == []


def _fastest(command: list[str], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=clean_env(), capture_output=True, timeout=120, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def test_a_client_command_starts_faster_than_the_database_layer_imports() -> None:
    """Relative, so that a loaded machine slows both: the fastest of three runs of
    ``market client uscc`` takes under a third of the fastest of three bare imports of
    what every command used to import (market.core.db: SQLAlchemy, SQLModel, Alembic),
    which took about as long as the command itself did then."""
    uscc = _fastest([*MARKET, "client", "uscc"])
    database = _fastest([sys.executable, "-c", "import market.core.db"])
    assert 3 * uscc < database, (uscc, database)
