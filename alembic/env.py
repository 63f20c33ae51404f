"""Alembic environment: one linear history for SQLite and PostgreSQL.

The market runs migrations on a connection it hands over in ``config.attributes``
(``market db upgrade``, start-up, tests). Run from the ``alembic`` command line, it
connects to ``MARKET_DATABASE_URL`` (or the default SQLite file) itself.
"""

import asyncio

from sqlalchemy.engine import Connection

from alembic import context
from market.core.migrations import is_modelled
from market.models import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=is_modelled,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    from market.core.config import Settings

    context.configure(url=Settings().sqlalchemy_url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    from market.core.config import Settings
    from market.core.db import make_engine

    engine = make_engine(Settings().sqlalchemy_url)
    async with engine.begin() as conn:
        await conn.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _configure(connection)
else:
    asyncio.run(_run_async())
