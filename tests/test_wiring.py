"""The market is wired in one place: reactions never depend on which modules a process
imported, and the packages import each other in one direction only.

- A script that imports one service module (``market.registry.review``) and builds the
  services through ``market.wiring.services`` gets every reaction: revoking an asset
  delists its listing and takes it out of search, in the same transaction.
- The imports under ``market/`` (read with ``ast``, never executed) form no loop between
  domain packages, go down oversight → trading → listings → registry → accounts only,
  ``market/core`` imports no domain, and ``ledger/`` imports nothing of ``market``.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from market.web.app import create_app
from market.wiring.bootstrap import create_staff_account
from tests.conftest import Parties, Party, make_settings
from tests.listings.support import listed, word
from tests.registry_support import provider
from tests.regulator_acts import enroll_regulator

ROOT = Path(__file__).resolve().parent.parent

# What the script runs, in a process of its own: nothing of listings or trading imported
# before the services are built, and nothing but review called.
SCRIPT = """
import asyncio
import sys

from market.registry import review

assert not any(name.startswith(("market.listings", "market.trading")) for name in sys.modules), sorted(sys.modules)

from market.accounts.models import Account
from market.core.config import Settings
from market.core.context import Ctx
from market.web.auth import Caller
from market.web.credentials import AccountSnapshot
from market.wiring.services import services


async def main(asset_id: str, regulator_id: str) -> None:
    async with services(Settings(), content=False, listen=False) as built:
        async with built.sessionmaker() as session:
            account = await session.get_one(Account, regulator_id)
            ctx = Ctx.of(built, Caller(AccountSnapshot.of(account), "tok_script"))
            await review.revoke(session, ctx, asset_id, "revoked by a script")
            await session.commit()


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_script_importing_one_service_module_gets_every_reaction(databases: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, await databases.new())
    token = await create_staff_account(settings, "Operator", "operator")
    async with AsyncTestClient(app=create_app(settings)) as client:
        operator = Party("", token, {})
        operator.id = (await client.get("/v1/accounts/me", headers=operator.auth)).json()["id"]
        parties = Parties(client, settings, operator)
        holder = await provider(client, parties)
        regulator = await enroll_regulator(client, settings)
        title = word()
        listing = await listed(client, holder, operator, title=title)
        assert listing["id"] in await _found(client, operator, title)

        environment = {**os.environ, "MARKET_DATA_DIR": str(settings.data_dir),
                       "MARKET_DATABASE_URL": settings.database_url, "MARKET_LOG_LEVEL": "WARNING",
                       "MARKET_LEDGER_ORIGIN": settings.ledger_origin}
        done = subprocess.run([sys.executable, "-c", SCRIPT, listing["asset_id"], regulator.id], cwd=ROOT,
                              env=environment, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

        after = (await client.get(f"/v1/listings/{listing['id']}", headers=holder.auth)).json()
        assert after["status"] == "delisted"
        assert listing["id"] not in await _found(client, operator, title)


async def _found(client: Any, viewer: Party, title: str) -> list[str]:
    """Search as staff (whose answers are never taken from memory)."""
    r = await client.get("/v1/listings", params={"q": title}, headers=viewer.auth)
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


# -- the imports, read statically ---------------------------------------------------------

DOMAINS = frozenset({"accounts", "registry", "listings", "trading", "oversight", "payments", "storage",
                     "notifications", "usage", "dsp"})
# The allowed direction: a domain imports only those after it in this list. Notifications
# come first: they consume every domain's events from the outbox, and no domain imports
# them (a domain tells through ``market.core.outbox``).
LAYERS = ["dsp", "notifications", "oversight", "usage", "trading", "listings", "registry", "accounts"]


def _imported(tree: ast.AST) -> set[str]:
    """Every module imported anywhere in ``tree`` (in functions too), except under
    ``if TYPE_CHECKING:``: annotations only, never run."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _package_imports(top: str) -> dict[str, set[str]]:
    """``{package under top: the market packages it imports}`` (``market.x.y`` → ``x``)."""
    edges: dict[str, set[str]] = {}
    for path in sorted((ROOT / top).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        package = parts[1] if top == "market" and len(parts) > 2 else parts[0]
        targets = edges.setdefault(package, set())
        for name in _imported(ast.parse(path.read_text(encoding="utf-8"))):
            pieces = name.split(".")
            if pieces[0] == "market":
                targets.add(pieces[1] if len(pieces) > 1 else "market")
        targets.discard(package)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import loop among ``edges`` (as the path round it), or None."""
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for target in sorted(edges.get(node, ())):
            loop = walk(target, path + [node])
            if loop:
                return loop
        done.add(node)
        return None

    for start in sorted(edges):
        loop = walk(start, [])
        if loop:
            return loop
    return None


def test_domains_import_each_other_in_one_direction() -> None:
    edges = _package_imports("market")
    domains = {name: targets & DOMAINS for name, targets in edges.items() if name in DOMAINS}
    assert _cycle(domains) is None, f"import loop between domains: {' -> '.join(_cycle(domains) or [])}"
    upward = [(name, target) for name, targets in domains.items() if name in LAYERS for target in targets
              if target in LAYERS and LAYERS.index(target) < LAYERS.index(name)]
    assert upward == [], f"imports against {' -> '.join(LAYERS)}: {upward}"
    wired = sorted(name for name, targets in edges.items() if name in DOMAINS and "wiring" in targets)
    assert wired == [], f"domains importing the composition root: {wired}"


def test_core_imports_no_domain_and_the_ledger_nothing_of_the_market() -> None:
    edges = _package_imports("market")
    assert edges["core"] & (DOMAINS | {"wiring"}) == set()
    # The sandbox is a library like the ledger: it knows no domain and no platform.
    assert edges.get("sandbox", set()) & (DOMAINS | {"wiring", "core", "web"}) == set()
    assert "market" not in _package_imports("ledger").get("ledger", set())


def test_the_static_check_sees_a_loop() -> None:
    """The check itself: a loop through a function-level import is found."""
    tree = ast.parse("def f():\n    from market.trading import settlement\n")
    assert "market.trading" in _imported(tree)
    assert _cycle({"trading": {"oversight"}, "oversight": {"trading"}}) == ["oversight", "trading", "oversight"]
    assert _cycle({"oversight": {"trading"}, "trading": {"listings"}}) is None
