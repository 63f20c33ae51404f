"""Who may see which account: one SQL clause, used by single reads and lists alike.
An account is seen by itself and by staff (operators, regulators); anyone else gets 404."""

from typing import Any

from sqlalchemy import true
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.core.visibility import load_visible
from market.web.auth import Caller


def visible_accounts(caller: Caller) -> Any:
    if caller.is_staff:
        return true()
    return Account.id == caller.id


async def load(session: AsyncSession, account_id: str, caller: Caller) -> Account:
    return await load_visible(session, Account, account_id, visible_accounts(caller), "account")
