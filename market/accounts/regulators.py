"""Regulator accounts (docs/API.md "Regulators"): made only
from an enrollment signed by the regulator authority, never by an operator's request.

``create_regulator`` checks the enrollment with ``enrollment.check_enrollment`` (the
one check), creates the verified regulator account with the enrolled key registered,
keeps the enrollment file, and records ``regulator.enrolled`` on the ledger: the
enrollment's hash, the authority that signed it and its signature, and the key (id and
public key). The regulator's name is not on the ledger (free text: docs/LEDGER.md §2);
the enrollment file, kept here and served to regulators, holds it. Never commits.
"""

import json
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.enrollment import Enrollment, authority_id
from market.accounts.models import Account, AccountKey, ApiToken, RegulatorEnrollment, TokenCount
from market.accounts.schemas import AccountStatus, Role
from market.core import audit
from market.core.context import Ctx
from market.core.errors import Conflict
from market.core.ids import new_id
from market.web.auth import hash_token, new_token


async def create_regulator(session: AsyncSession, ctx: Ctx, enrollment: Enrollment) -> tuple[Account, str]:
    """The regulator ``enrollment`` names (already checked against the configured
    authority); returns the account and its first token. 409 if its key is registered."""
    if enrollment.authority != authority_id(ctx.settings.regulator_authority):
        raise Conflict("the enrollment names another authority than the configured one", kind="wrong-authority")
    taken = (await session.exec(select(AccountKey.id).where(AccountKey.public_key == enrollment.public_key))).first()
    if taken is not None:
        raise Conflict(f"the enrolled public key is already registered ({taken})", kind="duplicate-key")
    now = ctx.now
    account = Account(id=new_id("acct"), name=enrollment.name, kind="institution", roles=Role.regulator.value,
                      jurisdiction=ctx.settings.jurisdiction, status=AccountStatus.verified, verified_at=now,
                      created_at=now)
    key = AccountKey(id=new_id("key"), account_id=account.id, public_key=enrollment.public_key, created_at=now)
    token = new_token()
    session.add(account)
    await session.flush()
    session.add(key)
    session.add(ApiToken(id=new_id("tok"), account_id=account.id, token_hash=hash_token(token), label="enrollment",
                         created_at=now))
    session.add(TokenCount(account_id=account.id, live=1))
    await session.flush()
    session.add(RegulatorEnrollment(id=new_id("enr"), account_id=account.id, key_id=key.id,
                                    authority=enrollment.authority, enrollment=json.dumps(enrollment.file()),
                                    enrollment_sha256=enrollment.sha256, created_at=now))
    subject, actor = f"account:{account.id}", account.id
    await audit.record(session, ctx, "account.created", subject, actor,
                       {"kind": account.kind, "roles": [Role.regulator.value], "jurisdiction": account.jurisdiction,
                        "status": account.status})
    await audit.record(session, ctx, "account.key_added", subject, actor,
                       {"key_id": key.id, "alg": "Ed25519", "public_key": key.public_key})
    await audit.record(session, ctx, "regulator.enrolled", subject, actor, enrollment_entry(enrollment, key.id))
    await session.flush()
    return account, token


def enrollment_entry(enrollment: Enrollment, key_id: str) -> dict[str, Any]:
    """The ``regulator.enrolled`` entry's data: hashes, ids, the key and the signature only."""
    return {"enrollment_sha256": enrollment.sha256, "authority": enrollment.authority,
            "signature": enrollment.signature, "key_id": key_id, "public_key": enrollment.public_key}


async def enrolled_key(session: AsyncSession, key_id: str, authority: str) -> RegulatorEnrollment | None:
    """The enrollment of ``key_id`` under ``authority`` (``<name>+<key id hex>``), if any."""
    return (await session.exec(select(RegulatorEnrollment).where(
        RegulatorEnrollment.key_id == key_id, RegulatorEnrollment.authority == authority))).first()
