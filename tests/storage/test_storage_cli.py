"""``market storage check`` and ``market storage migrate``, run as an operator runs them
(a subprocess per call) on a market with content: every kept blob checked against its
registered commitment, copied into an object store (moto on 127.0.0.1) and checked
there; a missing or corrupted blob is named, and the exit status is 1."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from market.storage.store import blob_name
from tests.registry_support import own_app, provider, registered_asset, upload, with_content
from tests.serving import serve_environment
from tests.storage.moto_s3 import S3_ENV, S3Server
from tests.storage.test_content_stores import blob_of

pytestmark = pytest.mark.slow


def storage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "market.tools.cli", "storage", *args], env=env,
                          capture_output=True, text=True, timeout=120)


async def test_check_then_migrate_then_check_in_the_bucket(databases, tmp_path: Path,
                                                           moto_server: S3Server) -> None:
    bucket = moto_server.bucket()
    target = f"{bucket}/moved"
    async with own_app(databases, tmp_path) as m:
        client, settings = m.client, m.parties.settings
        holder = await provider(client, m.parties)
        first = await registered_asset(client, holder, m.operator, os.urandom(300_000))
        second = await registered_asset(client, holder, m.operator, os.urandom(70_000))
        # A draft whose first upload was replaced: the market deleted that blob on purpose.
        drafted = await with_content(client, holder, os.urandom(1000))
        await upload(client, holder, drafted["id"], os.urandom(2000))
        blobs: dict[str, Any] = {a["id"]: blob_of(client, a["id"]) for a in (first, second, drafted)}

        env = {**serve_environment(settings), **S3_ENV, "MARKET_S3_ENDPOINT_URL": moto_server.url}
        r = storage(env, "check")
        assert r.returncode == 0 and "checked 3 revisions: 0 with problems" in r.stderr, r.stderr + r.stdout

        r = storage(env, "migrate", "--to", target)
        assert r.returncode == 0 and "copied 3 of 3 revisions" in r.stderr, r.stderr + r.stdout
        assert sorted(moto_server.keys(target)) == sorted(f"moved/{blob_name(b)}" for b in blobs.values())
        in_bucket = {**env, "MARKET_BLOB_STORE": target}
        r = storage(in_bucket, "check")
        assert r.returncode == 0 and "checked 3 revisions: 0 with problems" in r.stderr, r.stderr + r.stdout
        r = storage(env, "migrate", "--to", target)  # again: everything is there already, and right
        assert r.returncode == 0 and "copied 3 of 3 revisions" in r.stderr, r.stderr + r.stdout

        # A copy tampered with in the bucket, a file gone from the disk: each named, exit 1.
        key = f"moved/{blob_name(blobs[second['id']])}"
        raw = bytearray(moto_server.get(target, key))
        raw[len(raw) // 2] ^= 1
        moto_server.put(target, key, bytes(raw))
        r = storage(in_bucket, "check")
        assert r.returncode == 1, r.stderr + r.stdout
        [line] = r.stdout.splitlines()
        assert line.startswith(f"{second['id']} revision 1") and "corrupted" in line, line
        assert "checked 3 revisions: 1 with problems" in r.stderr

        (settings.blobs_dir / blob_name(blobs[first["id"]])).unlink()
        r = storage(env, "check")
        assert r.returncode == 1 and r.stdout.splitlines() == [
            f"{first['id']} revision 1 (blob {blobs[first['id']]}): missing"], r.stdout
        # The migration mends the tampered copy from the disk, and keeps the good copy of
        # what the disk lost; once that is gone too, it names it.
        r = storage(env, "migrate", "--to", target)
        assert r.returncode == 0, r.stderr + r.stdout
        assert bytes(raw) != moto_server.get(target, key)
        r = storage(in_bucket, "check")
        assert r.returncode == 0, r.stderr + r.stdout
        moto_server.delete(target, f"moved/{blob_name(blobs[first['id']])}")
        r = storage(env, "migrate", "--to", target)
        assert r.returncode == 1 and r.stdout.splitlines() == [
            f"{first['id']} revision 1 (blob {blobs[first['id']]}): missing from the source store"], r.stdout

        r = storage({**env, "MARKET_S3_ENDPOINT_URL": "http://127.0.0.1:9"}, "migrate", "--to", target)
        assert r.returncode == 1 and "Check MARKET_BLOB_STORE" in r.stderr and "Traceback" not in r.stderr, r.stderr
