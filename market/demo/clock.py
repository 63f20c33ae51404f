"""The demo's clock: the market's business time, set back months and moved forward step
by step, so that a history of months is made in seconds through the services.

Every service reads the time from ``Ctx.now`` (``services.clock``), so what the demo
makes carries the times its clock says: an order placed in March says March, its
settlement the day its transfer was confirmed. The ledger keeps wall-clock time (its
entries say when they were written, not what they are about), and ids stay ordered by
when they were made. The clock never goes back: every step of the history happens
after the one before, as the market's rules (dispute windows, access periods, alert
windows) expect.
"""

from datetime import datetime, timedelta

from market.core.clock import Clock


class DemoClock(Clock):
    """A clock that says ``at`` until it is moved forward."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        if at < self.at:
            raise ValueError(f"the demo's clock does not go back (from {self.at.isoformat()} to {at.isoformat()})")
        self.at = at

    def advance(self, delta: timedelta) -> None:
        self.set(self.at + delta)


__all__ = ["DemoClock"]
