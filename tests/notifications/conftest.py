"""Fixtures of the notification tests: an app with fast notification settings and a receiver."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.notifications.support import FAST, Receiver, own_app


@pytest.fixture(scope="module")
async def fast(databases: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """An app of the module's own: private receivers allowed, retries after 0.05s and 0.1s."""
    async with own_app(databases, tmp_path_factory.mktemp("notify"), **FAST) as app:
        yield app


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()
