"""Where a purchase's CPU goes in the API process, by library and by function.

    python bench/purchase_profile.py [--db sqlite|postgresql://…] [--seconds 10] [--top 30]

Starts ``market serve`` (one worker) on a fresh database as ``bench/trade.py`` does,
seeds 32 buyers, and has them buy as that benchmark's purchase phase does. The API
process runs Python's deterministic profiler only while they buy (switched on and off
by ``SIGUSR1``, from a ``sitecustomize`` this script writes to a temporary directory on
the server's ``PYTHONPATH``): seeding, start-up and the bare route stay out of it.

Prints the profiled CPU per purchase by package (SQLAlchemy, Litestar, uvicorn, the
market's own modules, the sqlite3 module's C calls, …) and the functions with the most
time of their own. Profiled times are ~1.7× real ones (the profiler's own cost); compare
shares and runs of this script, not these times with ``bench/trade.py``'s. The last line
is one JSON object: ``profiled_ms_per_purchase``, ``purchases`` and each package's share.
"""

import argparse
import asyncio
import collections
import json
import os
import pstats
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.api import Database, Server, free_port, say  # noqa: E402
from bench.trade import purchases, seed  # noqa: E402

HOOK = textwrap.dedent('''
    import os
    if os.environ.get("BENCH_PROFILE_OUT"):
        import cProfile, signal, time
        # BENCH_PROFILE_CPU: time by the process's CPU clock, so that waiting for a core
        # (two cores shared with PostgreSQL and the other processes) is not counted.
        _timer = (time.process_time,) if os.environ.get("BENCH_PROFILE_CPU") else ()
        _profile, _on = cProfile.Profile(*_timer), [False]

        def _toggle(*_):
            if _on[0]:
                _profile.disable()
                _profile.dump_stats(os.environ["BENCH_PROFILE_OUT"] + f".{os.getpid()}")
            else:
                _profile.enable()
            _on[0] = not _on[0]

        signal.signal(signal.SIGUSR1, _toggle)
''')


def package(filename: str, name: str) -> str:
    found = re.search(r"site-packages/([^/]+)", filename)
    if found:
        return found.group(1)
    if filename.startswith(str(ROOT)):
        parts = Path(filename).relative_to(ROOT).parts
        return "/".join(parts[:2]) if parts[0] == "market" else parts[0]
    if filename == "~":
        return "sqlite3 (C)" if "sqlite3" in name else "builtins (C)"
    return "stdlib"


def report(path: str, top: int, purchases: int | None = None) -> dict[str, Any]:
    stats = pstats.Stats(path)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    # One purchase places one order: placed_document is called once for each.
    count = purchases or sum(v[1] for k, v in entries.items() if k[2] == "placed_document")
    total = sum(v[2] for v in entries.values())
    by: collections.Counter[str] = collections.Counter()
    for (filename, _, name), (_, _, own, _, _) in entries.items():
        by[package(filename, name)] += own
    say(f"{count} purchases profiled, {1000 * total / count:.3f} ms of profiled CPU each")
    for name, own in by.most_common(20):
        say(f"  {100 * own / total:5.1f}%  {1000 * own / count:6.3f} ms  {name}")
    say("functions by time of their own:")
    for (filename, line, name), (_, calls, own, _, _) in sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]:
        where = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        say(f"  {1000 * own / count:6.3f} ms  {calls / count:6.1f}×  {where}:{line}({name})")
    return {"profiled_ms_per_purchase": round(1000 * total / count, 3), "purchases": count,
            "shares": {name: round(own / total, 3) for name, own in by.most_common(12)}}


def worker_of(parent: int) -> int:
    """The pid of ``market work`` started by the ``market serve`` of pid ``parent``."""
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            if b"work" in (entry / "cmdline").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    raise SystemExit("no worker process found under the server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite (default) or a postgresql:// URL")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the profiled purchases run")
    parser.add_argument("--top", type=int, default=30, help="functions listed")
    parser.add_argument("--process", choices=["api", "worker"], default="api",
                        help="the API process (default), or the worker (ledger integration, the clock, notifications)")
    parser.add_argument("--cpu", action="store_true",
                        help="time by the process's CPU clock, not the wall clock (waits for a core left out)")
    parser.add_argument("--keep", metavar="FILE", help="also keep the profile (pstats) in FILE, to read with pstats")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    (tmp / "hook").mkdir()
    (tmp / "hook" / "sitecustomize.py").write_text(HOOK)
    database = Database(args.db, tmp)
    server = None
    try:
        url = asyncio.run(database.create())
        port = free_port()
        out = str(tmp / "api.prof")
        server = Server(url, tmp, port, {"BENCH_PROFILE_OUT": out, "BENCH_PROFILE_CPU": "1" if args.cpu else "",
                                         "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp / 'hook'}"})
        say(f"server on 127.0.0.1:{port} ({'sqlite' if args.db == 'sqlite' else 'postgresql'}); seeding 32 buyers")
        seeded = asyncio.run(seed(port, server.operator, 32, 4))
        pid = server.proc.pid if args.process == "api" else worker_of(server.proc.pid)

        async def run() -> dict[str, Any]:
            async def switch() -> None:
                await asyncio.sleep(1.0)  # the warm-up of the purchases below
                os.kill(pid, signal.SIGUSR1)
                await asyncio.sleep(args.seconds)
                os.kill(pid, signal.SIGUSR1)

            switching = asyncio.create_task(switch())
            figures = await purchases(port, seeded, args.seconds + 1.0, 1.0)
            await switching
            return figures

        figures = asyncio.run(run())
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{out}.{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # written whole
        say(f"purchases/s while profiled: {figures['purchases_per_s']:.1f}")
        # The worker places no order: its CPU is divided by the purchases made while it was profiled.
        made = round(figures["purchases_per_s"] * args.seconds) if args.process == "worker" else None
        result = report(f"{out}.{pid}", args.top, made)
        if args.keep:
            shutil.copyfile(f"{out}.{pid}", args.keep)
    finally:
        if server is not None:
            server.stop()
        asyncio.run(database.drop())
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
