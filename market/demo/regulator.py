"""The demo's regulator: enrolled by a demo authority, exactly as a real one is.

The demo plays the authority's part on the operator's machine, which a real market
never does (docs/regulators.md): it makes the authority's key as ``market regulator
authority-keygen`` does, makes the regulator's Ed25519 key as ``market client keygen``
does, signs the enrollment as ``market regulator enroll`` does, and creates the
regulator through the check ``market admin create-regulator --enrollment`` runs
(``enrollment.check_enrollment``, then ``regulators.create_regulator``). The keys are
kept in the data directory (``market.demo.keep``), so a second run finds the regulator
by its key and enrolls nobody twice.

A market trusts the demo authority only when told to: ``MARKET_REGULATOR_AUTHORITY``
set to the vkey the demo prints (docs/regulators.md, "The demo").
"""

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlmodel import col, select

from ledger.note import make_vkey
from market.accounts import regulators
from market.accounts.enrollment import authority_keygen, check_enrollment, enroll, load_authority_key
from market.accounts.models import Account, AccountKey
from market.core.context import Ctx
from market.core.services import Services
from market.demo import keep
from market.tools import client
from market.web.auth import Caller
from market.web.credentials import AccountSnapshot

AUTHORITY_NAME = "demo-regulator-authority"
REGULATOR_NAME = "演示市场监督管理局 Demo Market Supervision Bureau"


def authority(folder: Path) -> str:
    """The demo authority's vkey; its key is made on first use (0600, never replaced)."""
    path = folder / keep.AUTHORITY_KEY
    if path.exists():
        name, key = load_authority_key(path)
        vkey = make_vkey(name, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    else:
        vkey = authority_keygen(path, AUTHORITY_NAME)
    public = folder / keep.AUTHORITY_VKEY
    if not public.exists() or public.read_text(encoding="ascii").strip() != vkey:
        public.write_text(vkey + "\n", encoding="ascii")
    return vkey


def regulator_key(folder: Path) -> Ed25519PrivateKey:
    """The demo regulator's key, made on first use as ``market client keygen`` makes one."""
    path = folder / keep.REGULATOR_KEY
    if not path.exists():
        client.keygen(path)
    return client.load_key(path)


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass(frozen=True)
class Regulator:
    caller: Caller
    key_id: str
    key: Ed25519PrivateKey
    token: str | None  # only when enrolled by this run

    def sign(self, draft: dict[str, Any]) -> dict[str, str]:
        """The signed body of an act drafted by ``acts.draft``."""
        signature = self.key.sign(base64.b64decode(draft["signing_bytes"]))
        return {"signing_bytes": draft["signing_bytes"], "key_id": self.key_id,
                "signature": base64.b64encode(signature).decode()}


async def enrolled(services: Services, folder: Path) -> Regulator:
    """The demo regulator: found by its key, or enrolled now under the demo authority
    (``services.settings.regulator_authority`` must be the demo authority's vkey)."""
    key = regulator_key(folder)
    public = public_b64(key)
    async with services.sessionmaker() as session:
        row = (await session.exec(select(AccountKey).where(col(AccountKey.public_key) == public))).first()
        token = None
        if row is None:
            ctx = Ctx.of(services, None)
            document = enroll(folder / keep.AUTHORITY_KEY, REGULATOR_NAME, public, ctx.now)
            content = json.dumps(document, ensure_ascii=False, indent=2).encode()
            keep.write_private(folder / keep.ENROLLMENT, content)
            account, token = await regulators.create_regulator(
                session, ctx, check_enrollment(content, services.settings.regulator_authority))
            await session.commit()
            row = (await session.exec(select(AccountKey).where(col(AccountKey.account_id) == account.id))).one()
        account = await session.get_one(Account, row.account_id)
        return Regulator(Caller(account=AccountSnapshot.of(account), token_id=""), row.id, key, token)


__all__ = ["AUTHORITY_NAME", "REGULATOR_NAME", "Regulator", "authority", "enrolled", "public_b64", "regulator_key"]
