"""The ``market`` command, run as a user would run it (a subprocess per call)."""

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until_serving

MARKET = [sys.executable, "-m", "market.tools.cli"]


@pytest.fixture
async def env(databases, tmp_path: Path) -> dict[str, str]:
    url = await databases.new(migrate=False)
    return {**os.environ, "MARKET_DATA_DIR": str(tmp_path / "var"), "MARKET_DATABASE_URL": url,
            "MARKET_LOG_LEVEL": "WARNING", "MARKET_LEDGER_ORIGIN": "ledger.cli.example/log"}


def market(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*MARKET, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_version(env) -> None:
    from market import __version__

    assert market(env, "version").stdout.strip() == __version__


def test_db_commands(env) -> None:
    assert market(env, "db", "current").stdout.strip() == "none"
    assert market(env, "db", "check", check=False).returncode == 1
    market(env, "db", "upgrade")
    from market.core.migrations import head_revision

    assert market(env, "db", "current").stdout.strip() == head_revision()
    assert market(env, "db", "check").returncode == 0


def test_keys(env) -> None:
    market(env, "keys", "init")
    key_file = Path(env["MARKET_DATA_DIR"]) / "keys" / "ledger.key"
    master_file = Path(env["MARKET_DATA_DIR"]) / "keys" / "master.key"  # the two keys every machine needs
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(master_file.stat().st_mode) == 0o600
    before = key_file.read_bytes(), master_file.read_bytes()
    market(env, "keys", "init")  # idempotent: the keys are kept
    assert (key_file.read_bytes(), master_file.read_bytes()) == before
    vkey = market(env, "keys", "show").stdout.strip()
    assert re.fullmatch(r"ledger\.cli\.example/log\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", vkey), vkey


def test_admin_prints_only_a_token(env) -> None:
    market(env, "db", "upgrade")
    out = market(env, "admin", "create-operator", "--name", "Staff").stdout
    assert re.fullmatch(r"mkt_[A-Za-z0-9_\-]{43}\n", out), out


def test_a_regulator_is_made_only_from_its_authority_s_enrollment(env, tmp_path) -> None:
    """authority-keygen → enroll → create-regulator; and every bad enrollment refused."""
    market(env, "db", "upgrade")
    authority_key = tmp_path / "authority" / "authority.key"
    vkey = market(env, "regulator", "authority-keygen", "--out", str(authority_key)).stdout.splitlines()[-1]
    assert re.fullmatch(r"regulator-authority\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", vkey), vkey
    assert stat.S_IMODE(authority_key.stat().st_mode) == 0o600
    assert market(env, "regulator", "authority-keygen", "--out", str(authority_key), check=False).returncode != 0
    regulator_key = tmp_path / "regulator.pem"
    public = market(env, "client", "keygen", "--out", str(regulator_key)).stdout.strip()
    enrollment = tmp_path / "enrollment.json"
    market(env, "regulator", "enroll", "--authority-key", str(authority_key), "--name", "市场监管局 SAMR",
           "--public-key", public, "--out", str(enrollment))
    trusted = {**env, "MARKET_REGULATOR_AUTHORITY": vkey}

    # No authority configured, another authority, a changed enrollment, no file: refused.
    r = market(env, "admin", "create-regulator", "--enrollment", str(enrollment), check=False)
    assert r.returncode != 0 and "MARKET_REGULATOR_AUTHORITY" in r.stderr, r.stderr
    other_key = tmp_path / "other.key"
    other = market(env, "regulator", "authority-keygen", "--out", str(other_key), "--name", "other-authority")
    r = market({**env, "MARKET_REGULATOR_AUTHORITY": other.stdout.splitlines()[-1]}, "admin", "create-regulator",
               "--enrollment", str(enrollment), check=False)
    assert r.returncode != 0 and "not by the configured authority" in r.stderr, r.stderr
    import json

    doc = json.loads(enrollment.read_text())
    doc["enrollment"]["name"] = "Someone else"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    r = market(trusted, "admin", "create-regulator", "--enrollment", str(forged), check=False)
    assert r.returncode != 0 and "signature does not verify" in r.stderr, r.stderr
    r = market(trusted, "admin", "create-regulator", "--enrollment", str(tmp_path / "nosuch.json"), check=False)
    assert r.returncode != 0 and "cannot read" in r.stderr, r.stderr
    r = market({**env, "MARKET_REGULATOR_AUTHORITY": "not-a-vkey"}, "admin", "create-regulator", "--enrollment",
               str(enrollment), check=False)
    assert r.returncode == 1 and "MARKET_REGULATOR_AUTHORITY" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = market(trusted, "admin", "create-regulator", "--name", "Old way", check=False)
    assert r.returncode != 0
    # The real one: the token is the last line; the same enrollment again is refused.
    out = market(trusted, "admin", "create-regulator", "--enrollment", str(enrollment)).stdout
    token = out.splitlines()[-1]
    assert re.fullmatch(r"mkt_[A-Za-z0-9_\-]{43}", token), out
    r = market(trusted, "admin", "create-regulator", "--enrollment", str(enrollment), check=False)
    assert r.returncode != 0 and "already registered" in r.stderr, r.stderr


def test_ledger_integrate_and_export(env, tmp_path) -> None:
    market(env, "db", "upgrade")
    market(env, "admin", "create-operator", "--name", "Op")
    note = market(env, "ledger", "integrate").stdout
    assert note.startswith("ledger.cli.example/log\n1\n")
    out = tmp_path / "export"
    market(env, "ledger", "export", str(out))
    assert (out / "checkpoint").read_text() == note
    assert (out / "tile" / "entries" / "000.p" / "1").exists()
    assert (out / "tile" / "0" / "000.p" / "1").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_bootstraps_an_operator_and_answers_health(env) -> None:
    port = _free_port()
    proc = subprocess.Popen([*MARKET, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health", proc)
        assert proc.stdout is not None
        token = proc.stdout.readline().strip()
        assert token.startswith("mkt_")
        me = httpx.get(f"http://127.0.0.1:{port}/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["roles"] == ["operator"]
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200
        # The ledger key was made 0600 and the size-0 checkpoint or later is served.
        cp = httpx.get(f"http://127.0.0.1:{port}/v1/ledger/checkpoint").text
        assert cp.startswith("ledger.cli.example/log\n")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # A second start on the same database creates no second operator.
    again = subprocess.Popen([*MARKET, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health", again)
    finally:
        again.terminate()
        out, _ = again.communicate(timeout=30)
    assert "mkt_" not in out


def test_no_new_keys_beside_a_database_that_needs_the_old_ones(env) -> None:
    """A missing keys directory on a database in use is refused in one line (exit 1) by
    serve and keys init, and nothing is made; a fresh database still gets its keys."""
    data = Path(env["MARKET_DATA_DIR"])
    market(env, "db", "upgrade")
    market(env, "admin", "create-operator", "--name", "Op")  # a ledger entry signed with the key
    (data / "keys").rename(data / "keys.lost")
    port = _free_port()
    for args in (("serve", "--port", str(port)), ("keys", "init"), ("admin", "create-operator", "--name", "X"),
                 ("ledger", "integrate")):
        result = market(env, *args, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "refusing to make new keys" in result.stderr and "ledger.key is missing" in result.stderr
        assert "ledger entries" in result.stderr
        assert not (data / "keys" / "ledger.key").exists(), args
        assert not (data / "keys" / "master.key").exists(), args
    # The ledger key back, the master key still lost, content stored: refused, naming it.
    (data / "keys").mkdir(mode=0o700)
    (data / "keys.lost" / "ledger.key").rename(data / "keys" / "ledger.key")
    (data / "blobs" / "ab").mkdir(parents=True)
    (data / "blobs" / "ab" / "content").write_bytes(b"sealed")
    result = market(env, "keys", "init", check=False)
    assert result.returncode == 1 and "master.key is missing" in result.stderr and "stored content" in result.stderr
    assert "ledger.key is missing" not in result.stderr
    assert not (data / "keys" / "master.key").exists()


def test_keys_are_made_for_a_fresh_database(env) -> None:
    market(env, "db", "upgrade")
    market(env, "keys", "init")
    assert (Path(env["MARKET_DATA_DIR"]) / "keys" / "ledger.key").exists()


def test_client_keygen_and_sign(env, tmp_path) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key_file = tmp_path / "provider.pem"
    public = base64.b64decode(market(env, "client", "keygen", "--out", str(key_file)).stdout.strip(), validate=True)
    assert len(public) == 32 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    message = base64.b64encode(b'{"type":"ownership-claim"}').decode()
    signature = base64.b64decode(market(env, "client", "sign", "--key", str(key_file), message).stdout.strip())
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b'{"type":"ownership-claim"}')
    assert market(env, "client", "sign", "--key", str(key_file), "not base64!", check=False).returncode != 0
    assert market(env, "client", "keygen", "--out", str(key_file), check=False).returncode != 0  # never overwrites


def test_client_keygen_refuses_an_existing_key_in_one_line(env, tmp_path) -> None:
    key_file = tmp_path / "client" / "provider.pem"  # a missing directory is made, 0700
    market(env, "client", "keygen", "--out", str(key_file))
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    before = key_file.read_bytes()
    again = market(env, "client", "keygen", "--out", str(key_file), check=False)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert key_file.read_bytes() == before
    market(env, "client", "keygen", "--out", str(key_file), "--force")
    assert key_file.read_bytes() != before and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left behind


@pytest.mark.parametrize(
    ("given", "says"),
    [("null", "SIGNING_BYTES is null"), ("", "SIGNING_BYTES is empty"), ("not base64!", "not standard base64"),
     ("bnVsbA==", "not what the API hands out"), ("aGVsbG8=", "not what the API hands out")],
)
def test_client_sign_refuses_what_the_api_never_hands_out(env, tmp_path, given, says) -> None:
    key_file = tmp_path / "provider.pem"
    market(env, "client", "keygen", "--out", str(key_file))
    result = market(env, "client", "sign", "--key", str(key_file), given, check=False)
    assert result.returncode != 0 and result.stdout == "" and "Traceback" not in result.stderr
    assert says in result.stderr and "jq -r .signing_bytes" in result.stderr, result.stderr


def test_client_sign_with_a_key_that_is_not_one(env, tmp_path) -> None:
    message = "eyJhIjoxfQ=="  # {"a":1}
    missing = market(env, "client", "sign", "--key", str(tmp_path / "nope.pem"), message, check=False)
    assert missing.returncode == 1 and "cannot read the key" in missing.stderr
    (tmp_path / "junk.pem").write_text("junk")
    junk = market(env, "client", "sign", "--key", str(tmp_path / "junk.pem"), message, check=False)
    assert junk.returncode == 1 and "market client keygen" in junk.stderr and "Traceback" not in junk.stderr


def test_client_uscc_is_valid_and_fresh(env) -> None:
    from market.accounts.uscc import validate

    codes = {market(env, "client", "uscc").stdout.strip() for _ in range(3)}
    assert len(codes) == 3
    for code in codes:
        assert validate(code) == code and code.startswith("91440300")
    assert market(env, "client", "uscc", "--division", "12", check=False).returncode == 1


def test_trial_usccorganization_code_check() -> None:
    from market.tools.client import organization_code_check

    # GB 11714-1997: weights 3 7 9 10 5 8 4 2; D2143569 sums to 199, 11 - 199 % 11 = 10, written X.
    assert organization_code_check("D2143569") == "X"


def test_known_failures_are_one_line_that_says_what_to_do(env) -> None:
    no_key = market(env, "keys", "show", check=False)
    assert no_key.returncode == 1 and "run 'market keys init'" in no_key.stderr and "Traceback" not in no_key.stderr
    unmigrated = market(env, "admin", "create-operator", "--name", "Op", check=False)
    assert unmigrated.returncode == 1 and "Traceback" not in unmigrated.stderr
    assert "run 'market db upgrade'" in unmigrated.stderr and unmigrated.stderr.count("\n") == 1
    down = market({**env, "MARKET_DATABASE_URL": f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/x"},
                  "db", "current", check=False)
    assert down.returncode == 1 and "Traceback" not in down.stderr, down.stderr
    assert "MARKET_DATABASE_URL" in down.stderr and "secret" not in down.stderr


async def test_an_app_will_not_start_without_the_keys_its_database_needs(databases, tmp_path) -> None:
    """Workers started without ``market serve`` (``uvicorn --factory``) refuse too."""
    from litestar.testing import AsyncTestClient

    from market.web.app import create_app
    from tests.conftest import make_settings
    from tests.registry_support import own_app

    async with own_app(databases, tmp_path / "first") as used:
        url = used.parties.settings.database_url
    moved = make_settings(tmp_path / "elsewhere", url)
    with pytest.raises(BaseException) as failed:
        async with AsyncTestClient(app=create_app(moved)):
            pass
    assert "refusing to make new keys" in repr(failed.value) or "refusing to make new keys" in str(
        getattr(failed.value, "exceptions", "")), failed.value
    assert not (tmp_path / "elsewhere" / "keys" / "ledger.key").exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_directory_are_private(env, tmp_path) -> None:
    """Under a umask of 022 the data directory is made 0700 and the database, its -wal
    and its -shm 0600, like the keys; an existing world-readable database is narrowed."""
    data = tmp_path / "private" / "var"
    sqlite_env = {**env, "MARKET_DATA_DIR": str(data), "MARKET_DATABASE_URL": ""}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*MARKET, *args], env=sqlite_env, capture_output=True, text=True, timeout=120,
                                preexec_fn=lambda: os.umask(0o022))
        assert result.returncode == 0, result.stderr
        return result

    run("db", "upgrade")
    run("admin", "create-operator", "--name", "Op")
    database = data / "market.db"
    assert _mode(data) == 0o700 and _mode(data.parent) == 0o700  # both made by the market
    files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-changes"))]
    # -wal and -shm exist while a connection is open or after a crash; hold one open to see them.
    import sqlite3

    held = sqlite3.connect(database)
    try:
        held.execute("PRAGMA journal_mode=WAL")
        held.execute("SELECT count(*) FROM accounts").fetchone()
        for file in files[:3]:
            assert file.exists() and _mode(file) == 0o600, (file, oct(_mode(file)))
    finally:
        held.close()
    # A database left world-readable (made before this check) is narrowed on next use.
    database.chmod(0o644)
    run("db", "current")
    assert _mode(database) == 0o600


def test_an_existing_data_directory_keeps_its_mode(env, tmp_path) -> None:
    data = tmp_path / "chosen"
    data.mkdir(mode=0o750)
    data.chmod(0o750)
    result = subprocess.run([*MARKET, "db", "upgrade"], env={**env, "MARKET_DATA_DIR": str(data),
                                                             "MARKET_DATABASE_URL": ""},
                            capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    assert _mode(data) == 0o750 and _mode(data / "market.db") == 0o600
