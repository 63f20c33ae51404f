"""Fixtures of the Dataspace Protocol tests: a market of the module's own with fast
callbacks (private receivers allowed), a recording consumer, a regulator."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.dsp.support import Consumer
from tests.notifications.support import FAST, Receiver, own_app
from tests.trading.support import buyer


@pytest.fixture(scope="module")
async def market(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    async with own_app(databases, tmp_path_factory.mktemp("dsp"), **FAST) as app:
        yield app


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
async def consumer(market: Any, receiver: Receiver) -> Consumer:
    """A new verified buyer's connector (each test its own)."""
    return Consumer(market.client, await buyer(market.client, market.parties), receiver)


@pytest.fixture(scope="module")
async def market_regulator(market: Any) -> Any:
    return await market.parties.regulator("DSP regulator")
