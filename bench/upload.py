"""Upload throughput and server memory: commitment + encryption + storage through HTTP.

    python bench/upload.py [--bytes N] [--store file|s3]     (default 1 GiB, file)

Starts a real ``market serve`` on a free loopback port with a fresh data directory,
signs up and verifies a provider, creates a draft, and PUTs N bytes streamed from a
generator (never held in memory on either side). With ``--store s3`` the content goes
to an S3 API on this machine (moto, ``bench/objectstore.py``) as a multipart upload, and
``upload_vs_store_put`` compares it with the same bytes put by the S3 client alone. The anchor is this machine's raw
single-core SHA-256 speed, measured in the same run. The server's resident memory is
sampled every 20 ms during the upload.

The last line printed is one JSON object: ``upload_vs_sha256`` (goal >= 0.25) and
``peak_rss_growth_mb`` (goal <= 100 for 1 GiB), with the absolute figures beside them.
"""

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PIECE = 1 << 20


def sha256_rate(total: int) -> float:
    """Bytes per second of hashlib.sha256 over ``total`` bytes in 1 MiB pieces."""
    piece = os.urandom(PIECE)
    h = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(total // PIECE):
        h.update(piece)
    return total / (time.perf_counter() - started)


def body(total: int):  # type: ignore[no-untyped-def]
    piece = os.urandom(PIECE)
    sent = 0
    while sent < total:
        n = min(PIECE, total - sent)
        yield piece[:n]
        sent += n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uscc() -> str:
    sys.path.insert(0, str(ROOT))
    from market.accounts.uscc import ALPHABET, check_character

    first = "91" + "".join(ALPHABET[b % 31] for b in os.urandom(15))
    return first + check_character(first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bytes", type=int, default=1 << 30)
    parser.add_argument("--store", choices=["file", "s3"], default="file", help="where the market keeps content")
    args = parser.parse_args()
    total = args.bytes
    if total < PIECE:
        parser.error(f"--bytes must be at least {PIECE} (1 MiB)")

    sys.path.insert(0, str(ROOT))
    from bench.objectstore import raw_put_rate, store_environment

    with tempfile.TemporaryDirectory(prefix="market-bench-") as tmp, store_environment(args.store) as store_env:
        port = free_port()
        env = {**os.environ, "MARKET_DATA_DIR": tmp, "MARKET_LOG_LEVEL": "WARNING",
               "MARKET_MAX_UPLOAD_BYTES": str(max(total, 1) * 2), **store_env}
        env.pop("MARKET_DATABASE_URL", None)
        server = subprocess.Popen([sys.executable, "-m", "market.tools.cli", "serve", "--port", str(port)], env=env,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            operator = server.stdout.readline().strip()
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=600) as client:
                for _ in range(300):
                    try:
                        if client.get("/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                r = client.post("/v1/accounts", json={"name": "Bench Co", "kind": "enterprise", "roles": ["provider"],
                                                      "uscc": uscc()})
                account, token = r.json()["account"]["id"], r.json()["token"]
                client.post(f"/v1/accounts/{account}/verification", json={"decision": "approve"},
                            headers={"Authorization": f"Bearer {operator}"}).raise_for_status()
                auth = {"Authorization": f"Bearer {token}"}
                asset = client.post("/v1/assets", headers=auth, json={
                    "title": "bench", "category": "other", "grade": "general", "personal_info": "none"}).json()["id"]

                print(f"measuring raw SHA-256 over {total / 2**20:.0f} MiB ...", file=sys.stderr)
                raw = sha256_rate(total)
                proc = psutil.Process(server.pid)
                baseline = proc.memory_info().rss
                peak = baseline
                stop = threading.Event()

                def sample() -> None:
                    nonlocal peak
                    while not stop.is_set():
                        peak = max(peak, proc.memory_info().rss)
                        time.sleep(0.02)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                print(f"uploading {total / 2**20:.0f} MiB ...", file=sys.stderr)
                started = time.perf_counter()
                r = client.put(f"/v1/assets/{asset}/content", content=body(total), headers=auth)
                elapsed = time.perf_counter() - started
                stop.set()
                sampler.join()
                r.raise_for_status()
                assert r.json()["size"] == total, r.text
                if args.store == "s3":
                    print(f"uploading {total / 2**20:.0f} MiB to the store directly ...", file=sys.stderr)
                    store_put = raw_put_rate(store_env, body(total), total)
        finally:
            server.terminate()
            server.wait(timeout=30)

    upload = total / elapsed
    figures: dict[str, object] = {
        "upload_vs_sha256": round(upload / raw, 3),
        "peak_rss_growth_mb": round((peak - baseline) / 2**20, 1),
        "bytes": total,
        "store": args.store,
        "upload_mb_s": round(upload / 1e6, 1),
        "sha256_mb_s": round(raw / 1e6, 1),
        "server_rss_baseline_mb": round(baseline / 2**20, 1),
    }
    if args.store == "s3":  # the store's own ceiling: the same bytes put by the client alone
        figures.update(store_put_mb_s=round(store_put / 1e6, 1), upload_vs_store_put=round(upload / store_put, 3))
    print(f"upload {figures['upload_mb_s']} MB/s vs raw SHA-256 {figures['sha256_mb_s']} MB/s; "
          f"server RSS grew {figures['peak_rss_growth_mb']} MiB", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
