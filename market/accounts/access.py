"""Who may see which account: one SQL clause, used by single reads and lists alike.
An account is seen by itself and by staff (operators, regulators); anyone else gets 404."""

from typing import Any

from sqlalchemy import true
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.auth import Caller
from market.errors import NotFound


def visible_accounts(caller: Caller) -> Any:
    if caller.is_staff:
        return true()
    return Account.id == caller.id


async def load(session: AsyncSession, account_id: str, caller: Caller) -> Account:
    account = (await session.exec(select(Account).where(Account.id == account_id,
                                                        visible_accounts(caller)))).first()
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account
