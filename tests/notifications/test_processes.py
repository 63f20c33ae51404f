"""Real server processes: an event committed just before ``kill -9`` is delivered after
a restart; two processes on one PostgreSQL database deliver each event once."""

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from market.core.config import Settings
from market.wiring.bootstrap import create_staff_account
from tests.conftest import PG_URL, make_settings, random_uscc, wait_until_serving
from tests.notifications.support import Receiver, eventually
from tests.serving import free_port, serve_environment

SIGNUP = "account.verification_requested"


@contextlib.contextmanager
def server(settings: Settings, name: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``market serve`` on ``settings``' database, fast notifications, private receivers allowed."""
    port = free_port()
    environment = serve_environment(settings, **{
        "MARKET_WEBHOOK_ALLOW_PRIVATE": "true", "MARKET_NOTIFY_INTERVAL": "0.05",
        "MARKET_WEBHOOK_RETRY_SCHEDULE": "0.1s,0.2s", **env})
    log = Path(settings.data_dir) / f"serve-{name}.log"
    with open(log, "w") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "market.tools.cli", "serve", "--port", str(port)],
                                env=environment, stdout=subprocess.DEVNULL, stderr=errors, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_serving(f"{base}/health", proc)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; its log: {log.read_text()[-2000:]}") from None
            yield base, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)


async def fresh(databases: Any, tmp: Path) -> tuple[Settings, str]:
    settings = make_settings(tmp, await databases.new())
    return settings, await create_staff_account(settings, "Operator", "operator")


def sign_up(base: str) -> str:
    r = httpx.post(f"{base}/v1/accounts", json={"name": f"P {secrets.token_hex(3)}", "kind": "enterprise",
                                                "roles": ["buyer"], "uscc": random_uscc()}, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["account"]["id"])


def subjects(receiver: Receiver, path: str) -> list[str]:
    return [r.json["data"]["subject"] for r in receiver.at(path)]


async def test_event_committed_before_kill_9_is_delivered_after_restart(
        databases: Any, tmp_path: Path, receiver: Receiver) -> None:
    settings, token = await fresh(databases, tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    # The first process never gets to dispatch (no background work): what it commits
    # is all the outbox holds when it dies.
    with server(settings, "first", MARKET_BACKGROUND_TASKS="false") as (base, proc):
        r = httpx.post(f"{base}/v1/webhooks", json={"url": receiver.url("/killed"), "events": [SIGNUP]},
                       headers=auth, timeout=30)
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        account = await asyncio.to_thread(sign_up, base)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    assert receiver.at("/killed") == []
    with server(settings, "second") as (base, _):
        async def delivered() -> Any:
            return account in subjects(receiver, "/killed")

        await eventually(delivered, seconds=30)
        got = next(r for r in receiver.at("/killed") if r.json["data"]["subject"] == account)
        assert Webhook(secret).verify(got.body, got.headers)["type"] == SIGNUP
        r = httpx.get(f"{base}/v1/notifications", headers=auth, timeout=30)
        assert [n["subject"] for n in r.json()["items"]].count(account) == 1


@pytest.mark.skipif(PG_URL is None, reason="needs PostgreSQL: two processes on one SQLite file share one writer "
                                           "lock, the case the advisory lock and SKIP LOCKED are for is PostgreSQL's")
async def test_two_processes_on_postgresql_deliver_each_event_once(
        databases: Any, tmp_path: Path, receiver: Receiver) -> None:
    settings, token = await fresh(databases, tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    with server(settings, "a") as (a, _), server(settings, "b") as (b, _):
        r = httpx.post(f"{a}/v1/webhooks", json={"url": receiver.url("/twice"), "events": [SIGNUP]},
                       headers=auth, timeout=30)
        assert r.status_code == 201, r.text

        def burst() -> list[str]:
            return [sign_up(a if i % 2 else b) for i in range(40)]

        made = await asyncio.to_thread(burst)

        async def all_in() -> Any:
            return set(made) <= set(subjects(receiver, "/twice"))

        await eventually(all_in, seconds=60)
        await asyncio.sleep(1.0)
        sent = subjects(receiver, "/twice")
        ids = [r.id for r in receiver.at("/twice")]
        assert sorted(sent) == sorted(made) and len(ids) == len(set(ids)) == len(made)
        items: list[str] = []
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{b}/v1/notifications", headers=auth, params=params, timeout=30).json()
            items += [n["subject"] for n in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(items) == sorted(made)
