"""Never make new keys beside a database that depends on the old ones.

The market's two keys live in files (``<data dir>/keys/``), its records in the
database. A key file missing while the database is in use is a lost or mis-pointed
keys directory, not a fresh install, and making a new key then does lasting harm:

- ``ledger.key`` signs every checkpoint. A new one would sign checkpoints that no
  verifier holding the old vkey accepts, beside entries and checkpoints signed by
  the old one: the log's history splits.
- ``master.key`` wraps every asset's data key. A new one unwraps none of them: every
  stored content becomes undeliverable.

So before a key is made, ``refuse_new_keys`` looks at what depends on it: ledger
entries (integrated or pending) and checkpoints for the ledger key; assets (each holds
a wrapped data key) and stored blobs for the master key. If any exists and the key
file does not, it raises ``KeyFileError`` naming the missing files and what needs
them. A fresh, empty database (or none yet) gets its keys made as before.
"""

from pathlib import Path

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from market.core.keys import KeyFileError, ledger_key_path

MASTER_KEY_FILE = "master.key"

# What each key's records are: (table, what a row of it is, for the message).
_LEDGER_TABLES = (("ledger_leaves", "ledger entries"), ("ledger_pending", "pending ledger entries"),
                  ("ledger_checkpoints", "signed checkpoints"))
_MASTER_TABLES = (("assets", "assets (each with a data key wrapped by the master key)"),)


def master_key_path(keys_dir: Path) -> Path:
    return keys_dir / MASTER_KEY_FILE


async def _present(engine: AsyncEngine, tables: tuple[tuple[str, str], ...]) -> list[str]:
    """The descriptions of ``tables`` that exist and hold at least one row."""
    async with engine.connect() as conn:
        existing = set(await conn.run_sync(lambda sync: sa_inspect(sync).get_table_names()))
        found = []
        for table, what in tables:
            if table in existing and (await conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1"))).first():
                found.append(what)
        await conn.rollback()
    return found


def _has_blobs(blobs_dir: Path) -> bool:
    if not blobs_dir.is_dir():
        return False
    return any(path.is_file() for path in blobs_dir.rglob("*"))


async def refuse_new_keys(engine: AsyncEngine, keys_dir: Path, blobs_dir: Path) -> None:
    """Raise ``KeyFileError`` when a key file is missing that existing records need."""
    problems = []
    ledger_key = ledger_key_path(keys_dir)
    if not ledger_key.exists():
        needs = await _present(engine, _LEDGER_TABLES)
        if needs:
            problems.append(f"{ledger_key} is missing, but the database holds {' and '.join(needs)} "
                            "signed with it (a new key would split the log)")
    master_key = master_key_path(keys_dir)
    if not master_key.exists():
        needs = await _present(engine, _MASTER_TABLES)
        if _has_blobs(blobs_dir):
            needs.append(f"stored content under {blobs_dir}")
        if needs:
            problems.append(f"{master_key} is missing, but there are {' and '.join(needs)} "
                            "(a new key would unwrap none of them)")
    if problems:
        raise KeyFileError("refusing to make new keys: " + "; ".join(problems)
                           + ". Restore the keys directory from a backup, or set MARKET_DATA_DIR to the one "
                           "this database was used with")


__all__ = ["MASTER_KEY_FILE", "master_key_path", "refuse_new_keys"]
