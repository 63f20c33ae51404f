"""The market's notion of now: real time, or a clock that tests move forward."""

from datetime import datetime, timedelta

from market.core.types import utcnow


class Clock:
    def now(self) -> datetime:
        return utcnow()


class FakeClock(Clock):
    """Real time plus an offset that only grows (tests advance it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        self.offset += delta
