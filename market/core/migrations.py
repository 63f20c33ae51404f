"""The schema's migrations: Alembic's, run on a connection we hand it, so they work from
inside a running event loop; and what Alembic compares of the models."""

from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


# What each database's full-text search keeps beside the models (migrations 0007, 0010):
# SQLite's FTS5 table and its shadow tables, PostgreSQL's ``tsv`` column and its index.
def is_modelled(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's ``include_object``: leave the search engines' own objects out of comparisons."""
    if type_ == "table" and name is not None and name.startswith("listing_fts"):
        return False
    if type_ == "column" and name == "tsv" and getattr(obj, "table", None) is not None \
            and obj.table.name == "listing_docs":
        return False
    return not (type_ == "index" and name == "ix_listing_docs_tsv")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Move the schema to ``revision`` in either direction (``base`` empties it)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def migrations_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
