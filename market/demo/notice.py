"""What the demo refuses: a public notice longer than it will wait out (``market demo``)."""

from datetime import timedelta

MAX_NOTICE = timedelta(minutes=1)


class DemoRefused(Exception):
    """The demo will not run with these settings; the message says what to do."""


def check_notice(notice: timedelta) -> None:
    if notice > MAX_NOTICE:
        raise DemoRefused(
            f"the notice period is {_duration(notice)}: the demo's assets would wait that long in public notice "
            f"(公示) before they could be registered and listed. The demo is for a throwaway database: run it "
            f"with --notice-period 0 (assets are registered at approval, and the ledger records a notice of 0 s) "
            f"or at most {_duration(MAX_NOTICE)} (the demo waits for the notice to end)")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
