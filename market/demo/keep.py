"""What the demo keeps in the data directory, under ``demo/`` (mode 0700):

- ``tokens.json`` (0600): every demo party's API token, with its name, roles and account,
  the regulator's key file and the demo authority's vkey, and what history was made. The
  market stores tokens hashed only, so this file is the one place they can be read
  again (``market demo --tokens``). A secret, like the keys beside it.
- ``regulator-authority.key`` (0600) and ``.vkey``: the demo's regulator authority
  (``market regulator authority-keygen``'s format), which enrolled the demo regulator.
- ``regulator.pem`` (0600): the demo regulator's Ed25519 key (``market client keygen``'s
  PEM PKCS#8), the file the dashboard's sign-in asks for.
- ``regulator-enrollment.json``: the enrollment the authority signed.

Files are written whole under a new name and renamed into place, so a crash never
leaves half a file.
"""

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from market.core.config import Settings
from market.demo.notice import DemoRefused

TOKENS = "tokens.json"
AUTHORITY_KEY = "regulator-authority.key"
AUTHORITY_VKEY = "regulator-authority.vkey"
REGULATOR_KEY = "regulator.pem"
ENROLLMENT = "regulator-enrollment.json"


def folder(settings: Settings) -> Path:
    return settings.data_dir / "demo"


@dataclass
class Party:
    key: str
    roles: list[str]
    name: str
    account: str
    token: str


@dataclass
class Kept:
    """The content of ``tokens.json``."""

    parties: list[Party] = field(default_factory=list)
    regulator_key: str = ""
    authority: str = ""
    history: dict[str, Any] | None = None

    def token(self, account_id: str) -> str | None:
        return next((p.token for p in self.parties if p.account == account_id), None)

    def put(self, party: Party) -> None:
        self.parties = [p for p in self.parties if p.account != party.account] + [party]


class KeptError(Exception):
    """The file is missing or not the demo's; the message says what to do."""


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` whole with mode 0600 (its folder 0700), replacing it atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(settings: Settings, kept: Kept) -> Path:
    path = folder(settings) / TOKENS
    text = {"about": "the demo market's API tokens: secret (market demo --tokens prints them)", **asdict(kept)}
    write_private(path, (json.dumps(text, ensure_ascii=False, indent=2) + "\n").encode())
    return path


def load(settings: Settings, *, missing_ok: bool = True) -> Kept:
    path = folder(settings) / TOKENS
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return Kept()
        raise KeptError(f"{path} does not exist: the demo has not been seeded in this data directory "
                        "(MARKET_DATA_DIR); run 'market demo --notice-period 0' first") from None
    except (OSError, ValueError) as exc:
        raise KeptError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return Kept(parties=[Party(**p) for p in raw["parties"]], regulator_key=str(raw.get("regulator_key", "")),
                    authority=str(raw.get("authority", "")), history=raw.get("history"))
    except (KeyError, TypeError) as exc:
        raise KeptError(f"{path} is not the demo's tokens file ({exc})") from None


def lines(settings: Settings, kept: Kept) -> list[str]:
    """What ``market demo --tokens`` prints: every party, then the regulator's key file and
    the authority to trust."""
    out = [f"{'/'.join(p.roles):15s} {p.token}  {p.account}  {p.name}" for p in kept.parties]
    if kept.regulator_key:
        out.append(f"regulator key file (the dashboard's sign-in asks for it): {kept.regulator_key}")
    if kept.authority:
        out.append(f"the demo regulator authority: MARKET_REGULATOR_AUTHORITY='{kept.authority}'")
    return out


__all__ = ["AUTHORITY_KEY", "AUTHORITY_VKEY", "ENROLLMENT", "REGULATOR_KEY", "TOKENS", "Kept", "KeptError", "Party",
           "folder", "lines", "load", "save", "write_private"]


def tokens(settings: Settings) -> list[str]:
    """What ``market demo --tokens`` prints, from the tokens file alone (nothing is opened
    but the file, nothing changes)."""
    try:
        return lines(settings, load(settings, missing_ok=False))
    except KeptError as exc:
        raise DemoRefused(str(exc)) from None
