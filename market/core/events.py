"""Domain events: how one domain reacts to another's change without importing it.

A service publishes an event (``await ctx.services.events.publish(session, ctx,
event)``) in its open transaction; every subscriber runs at once, in that same
transaction, before the caller commits, so the reaction commits or rolls back with the
change. Which subscriber reacts to which event is decided in one place,
``market.wiring.subscribers``, when the services are built: never by which modules
happen to have been imported.

``Machine.move`` publishes ``Moved`` for every move of every state machine; the named
events below are those a domain publishes for another to react to.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from market.core.context import Ctx

__all__ = ["AttemptRefused", "Events", "Handler", "KeyRevoked", "Moved", "OrderRefunded", "OrderSettled"]

E = TypeVar("E")
Handler = Callable[[AsyncSession, "Ctx", E], Awaitable[None]]


@dataclass(frozen=True)
class Moved:
    """A state machine moved ``row`` (of ``kind``: asset, account, listing, order ...) by
    ``action``; the row already holds its new state."""

    kind: str
    action: str
    row: Any


@dataclass(frozen=True)
class KeyRevoked:
    """An account revoked one of its keys (``key`` is the revoked ``AccountKey``): what it
    signed and is still pending goes void."""

    key: Any


@dataclass(frozen=True)
class OrderSettled:
    """``order`` was paid and is active (its contract written)."""

    order: Any


@dataclass(frozen=True)
class OrderRefunded:
    """``order`` was refunded after a dispute."""

    order: Any


@dataclass(frozen=True)
class AttemptRefused:
    """A gate the regulator watches refused an attempt (ordering one's own listing, an
    export, registering core data). Published in a transaction of its own (the
    attempt's was rolled back) so the refusal is kept though nothing else changed."""

    kind: str  # the problem type: self-dealing, export-not-allowed, core-data-refused
    account_id: str
    detail: str
    listing_id: str | None = None
    asset_id: str | None = None


class Events:
    """The subscribers of each event type, and ``publish`` running them in order."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[tuple[str | None, Handler[Any]]]] = {}

    def subscribe(self, event_type: type[E], handler: Handler[E], *, kind: str | None = None) -> None:
        """Run ``handler(session, ctx, event)`` for every ``event_type`` published (for
        ``Moved``: only moves of ``kind`` when it is given)."""
        self._handlers.setdefault(event_type, []).append((kind, handler))

    async def publish(self, session: AsyncSession, ctx: "Ctx", event: Any) -> None:
        """Run the subscribers of ``event``, in the caller's transaction (none commits)."""
        kind = getattr(event, "kind", None) if isinstance(event, Moved) else None
        for wanted, handler in self._handlers.get(type(event), []):
            if wanted is None or wanted == kind:
                await handler(session, ctx, event)
