"""The registry (确权, DESIGN §4.1): assets, content revisions, signed ownership claims,
review, public notice, objections, registration certificates, transfer, cancellation.

Modules: ``states`` (statuses and transition tables), ``access`` (who sees what),
``assets``, ``content`` (the upload saga), ``claims``, ``review`` (review, notice,
registration, cancellation, revocation, freezing), ``objections``, ``transfers``,
``certificates``, ``routes``.
"""

from market.accounts import service as _accounts
from market.accounts.models import AccountKey
from market.core.context import Ctx
from sqlmodel.ext.asyncio.session import AsyncSession


async def _void_proposals_of_key(session: AsyncSession, ctx: Ctx, key: AccountKey) -> None:
    from market.registry import transfers

    await transfers.void_pending(session, ctx, key_id=key.id, cause="key_revoked")


_accounts.on_key_revoked.append(_void_proposals_of_key)
