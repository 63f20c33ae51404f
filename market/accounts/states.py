"""Account statuses (KYC) and their transition table (pure data).

``pending → verified | rejected``; a rejected applicant may be approved on appeal.
``suspended`` is a flag beside the status, set and cleared by a regulator.
"""

from market.accounts.models import Account
from market.accounts.schemas import AccountStatus
from market.core.statemachine import Machine, Transition

A = AccountStatus
T = Transition.of

ACCOUNT = Machine("account", Account, AccountStatus, A.pending, {
    "approve": T({A.pending, A.rejected}, A.verified, "account.verified"),
    "reject": T({A.pending}, A.rejected, "account.rejected"),
    "suspend": T(set(A), None, "account.suspended"),
    "reinstate": T(set(A), None, "account.reinstated"),
}, subject=lambda a: f"account:{a.id}", created="account.created")

MACHINES = (ACCOUNT,)
