"""``Ctx``: what every service call gets besides its session — who asks, what time it
is, and the market's services (settings, ledger, events ...). Services never read the
wall clock or the environment themselves, so tests move time with a ``FakeClock`` and
every domain sees one "now" per request.
"""

from dataclasses import dataclass
from datetime import datetime

from market.core.config import Settings
from market.core.errors import NotAuthenticated
from market.core.services import Services
from market.web.auth import Caller

__all__ = ["MARKET_ACTOR", "Ctx"]

MARKET_ACTOR = "market"  # the ledger's actor for the market's own work (docs/LEDGER.md §2)


@dataclass(frozen=True)
class Ctx:
    caller: Caller | None
    now: datetime
    services: Services

    @classmethod
    def of(cls, services: Services, caller: Caller | None) -> "Ctx":
        """For a request: now by the services' clock."""
        return cls(caller=caller, now=services.clock.now(), services=services)

    @classmethod
    def system(cls, services: Services) -> "Ctx":
        """For the market's own background work (no caller; actor ``market``)."""
        return cls(caller=None, now=services.clock.now(), services=services)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def user(self) -> Caller:
        """The caller; 401 when there is none."""
        if self.caller is None:
            raise NotAuthenticated("this needs 'Authorization: Bearer <token>'", kind="missing-token")
        return self.caller

    @property
    def actor(self) -> str:
        return self.caller.id if self.caller is not None else MARKET_ACTOR

    @property
    def market(self) -> str:
        """The market's name in signed documents: its ledger origin."""
        return self.settings.ledger_origin
