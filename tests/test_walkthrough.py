"""The README's first session and working day, run word for word (twice) against ``market serve``.

Only the market's address and the operator token are put in; the README's own
commands do the rest, in a directory laid out like a checkout (``.venv/bin/market``,
``.venv/bin/python``), so that everything the walkthrough writes can be checked.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until_serving

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("bash", "curl", "jq")),
                                reason="the walkthrough needs bash, curl and jq")


def readme_block(section: str, index: int) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```sh\n(.*?)```", text[start:end if end > 0 else None], flags=re.S)
    return blocks[index]


def checkout_like(tmp: Path) -> Path:
    """A directory with the ``.venv/bin`` commands the README calls, running this code."""
    bin_dir = tmp / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, args in (("market", "-m market.tools.cli"), ("python", "")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" {args} "$@"\n')
        script.chmod(0o755)
    return tmp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
async def test_readme_walkthrough_runs_twice_as_written(databases, tmp_path) -> None:
    home = checkout_like(tmp_path / "checkout")
    port = _free_port()
    env = {**os.environ, "MARKET_DATA_DIR": str(tmp_path / "data"), "MARKET_DATABASE_URL": await databases.new(),
           "MARKET_PORT": str(port), "MARKET_NOTICE_PERIOD": "1s", "MARKET_CLOCK_INTERVAL": "0.2",
           "MARKET_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([str(home / ".venv/bin/market"), "serve"], cwd=home, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        token = server.stdout.readline().strip()
        assert token.startswith("mkt_")
        wait_until_serving(f"http://127.0.0.1:{port}/health", server)

        # The first session, then the working day in the same shell (it goes on with its variables).
        walk = readme_block("## A first session", 1) + readme_block("## A working day", 0)
        assert "B=http://127.0.0.1:8000\n" in walk and "\nOP=mkt_..." in walk
        walk = walk.replace("B=http://127.0.0.1:8000", f"B=http://127.0.0.1:{port}").replace("OP=mkt_...", f"OP={token}")
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}
        outputs = []
        for run in (1, 2):
            done = subprocess.run(["bash", "-c", walk], cwd=home, env=client_env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, (run, done.stdout, done.stderr)
            assert done.stderr == "", (run, done.stderr)
            assert re.search(r"^valid: entry \d+ is in ", done.stdout, flags=re.M), done.stdout
            assert '"registration_number": "DR-' in done.stdout
            assert '"status": 4' not in done.stdout and '"status":4' not in done.stdout, done.stdout  # no problem
            # The working day: found without 市, told how to pay, confirmed from the queue, delivered intact.
            assert "深圳市公交刷卡记录 2026Q3" in done.stdout
            assert re.search(r'"instructions": \{\s*"account": ".+",\s*"reference": "\S+"', done.stdout), done.stdout
            assert re.search(r"^ord_\w+ 深圳市公交刷卡记录 2026Q3 50000 fen$", done.stdout, flags=re.M), done.stdout
            assert "\nactive\n" in done.stdout and "chunks verified against" in done.stdout
            assert "the bytes registered, and no others" in done.stdout
            assert re.search(r"^\s+1 asset\.registered$", done.stdout, flags=re.M), done.stdout  # the inbox
            assert '"gross":{"amount":50000,"currency":"CNY"}' in done.stdout
            assert "price_fen" in done.stdout
            outputs.append(done.stdout)
        assert outputs[0] != outputs[1]

        # Everything it wrote is under var/client/ (ignored by git); the keys are private.
        assert sorted(p.name for p in home.iterdir()) == [".venv", "var"]
        client = home / "var" / "client"
        keys = sorted(client.glob("acct_*.pem"))
        assert len(keys) == 2 and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
        assert {"certificate.json", "records.csv"} <= {p.name for p in client.iterdir()}
        assert len(list(client.glob("bought-ord_*.csv"))) == 2 and not list(client.glob("*.downloading"))

        ledger = readme_block("## Checking the ledger yourself", 0).replace("$B", f"http://127.0.0.1:{port}")
        checks = "C=var/client\n" + "\n".join(line for line in ledger.splitlines() if "witness" not in line)
        done = subprocess.run(["bash", "-ec", checks], cwd=home, env=client_env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ok: ") and "\nvalid: entry" in done.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
