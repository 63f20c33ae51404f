"""The master key file: created private, reloaded, refused when malformed or open to
other users (at load and at the market's start), and the data keys it wraps."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import pytest
from litestar.testing import TestClient

from market.storage import KeyFileError, KeyUnwrapError, MasterKey
from market.web.app import create_app
from tests.conftest import make_settings


def test_master_key_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "master.key"
    old_umask = os.umask(0)  # mode must not depend on the process umask
    try:
        master = MasterKey.load_or_create(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert os.listdir(path.parent) == ["master.key"]  # no temp file left behind
    assert "redacted" in repr(master)

    key_bytes = path.read_bytes()
    data_key, wrapped = master.new_data_key("ast_1")
    assert len(data_key) == 32 and data_key not in wrapped
    again = MasterKey.load_or_create(path)
    assert again.unwrap("ast_1", wrapped) == data_key
    assert MasterKey(key_bytes).unwrap("ast_1", wrapped) == data_key
    assert path.read_bytes() == key_bytes  # the reload did not rewrite it
    other = MasterKey.load_or_create(tmp_path / "other.key")
    with pytest.raises(KeyUnwrapError):
        other.unwrap("ast_1", wrapped)


def test_master_key_concurrent_first_use_agrees(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    masters: list[MasterKey] = []
    threads = [threading.Thread(target=lambda: masters.append(MasterKey.load_or_create(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data_key, wrapped = masters[0].new_data_key("ast_1")
    assert all(m.unwrap("ast_1", wrapped) == data_key for m in masters)
    assert os.listdir(path.parent) == ["master.key"]


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_master_key_wrong_length_rejected(tmp_path: Path, length: int) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"k" * length)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="exactly 32 bytes"):
        MasterKey.load_or_create(path)
    assert path.read_bytes() == b"k" * length  # never overwritten


def test_unwrap_rejects_other_asset_and_tampering(tmp_path: Path) -> None:
    master = MasterKey.load_or_create(tmp_path / "master.key")
    data_key, wrapped = master.new_data_key("ast_1")
    assert master.unwrap("ast_1", wrapped) == data_key
    with pytest.raises(KeyUnwrapError):
        master.unwrap("ast_2", wrapped)
    for i in range(len(wrapped)):
        bad = bytearray(wrapped)
        bad[i] ^= 1
        with pytest.raises(KeyUnwrapError):
            master.unwrap("ast_1", bytes(bad))
    with pytest.raises(KeyUnwrapError):
        master.unwrap("ast_1", wrapped[:-1])
    assert master.new_data_key("ast_1")[0] != data_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666, 0o700 | 0o040])
def test_master_key_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    MasterKey.load_or_create(path)
    key_bytes = path.read_bytes()
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=rf"{re.escape(str(path))} .*\(mode {mode:04o}\).*chmod 600 {re.escape(str(path))}"):
        MasterKey.load_or_create(path)
    assert path.read_bytes() == key_bytes  # refused, never replaced
    os.chmod(path, 0o600)  # the fix the message names
    assert MasterKey.load_or_create(path).unwrap("ast_1", MasterKey(key_bytes).wrap("ast_1", bytes(32))) == bytes(32)


@pytest.mark.parametrize("mode", [0o400, 0o600])
def test_master_key_private_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    MasterKey.load_or_create(path)
    os.chmod(path, mode)
    MasterKey.load_or_create(path)


async def test_market_refuses_to_start_with_a_loose_master_key(databases, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, await databases.new(), background_tasks=False)
    path = settings.keys_dir / "master.key"
    with TestClient(app=create_app(settings)):  # first start: the key is made private
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(ExceptionGroup) as info:  # the lifespan runs in a task group
        with TestClient(app=create_app(settings)):
            pass
    assert info.group_contains(KeyFileError, match=rf"{re.escape(str(path))} is open to group or others.*chmod 600 {re.escape(str(path))}")
