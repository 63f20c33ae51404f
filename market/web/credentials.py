"""Who a bearer token belongs to, as remembered by each process (``auth``).

The memo of credentials is a ``market.core.memo.Memo`` of topic ``credentials``: any
committed change to an account (KYC decision, suspension, roles) or to a token other
than its ``last_used_at`` (a revocation) empties it in every process before the next
request (see ``market.core.memo`` for how, on SQLite and on PostgreSQL).
"""

from dataclasses import dataclass
from datetime import datetime

from market.accounts.models import Account
from market.core.memo import FileEpochs, Memo

TOPIC = "credentials"


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """An account's columns as read when its token was last checked; immutable, and no
    ORM object, so no request can change what other requests see or attach it to a
    session. Load the row (``session.get(Account, id)``) to change an account."""

    id: str
    name: str
    kind: str
    roles: str
    uscc: str | None
    controller_uscc: str | None
    jurisdiction: str
    status: str
    suspended: bool
    status_reason: str | None
    verified_at: datetime | None
    verified_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> "AccountSnapshot":
        return cls(**{name: getattr(account, name) for name in cls.__slots__})

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split(","))


@dataclass
class Credential:
    """A valid token and a snapshot of its account."""

    token_id: str
    account: AccountSnapshot
    last_used_at: datetime | None  # as last written by this process, for the touch granularity


CredentialCache = Memo[Credential]


def credential_memo(epochs: FileEpochs | None = None) -> "Memo[Credential]":
    return Memo(TOPIC, epochs=epochs)


__all__ = ["TOPIC", "AccountSnapshot", "Credential", "CredentialCache", "credential_memo"]
