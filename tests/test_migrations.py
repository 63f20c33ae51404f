"""Migrations: one linear history, and the models agree with it (no autogenerate drift)."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from market.core import db, migrations
from market.models import metadata


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, heads
    revisions = list(script.walk_revisions())
    assert sum(1 for r in revisions if r.down_revision is None) == 1


async def test_models_match_migrations(databases) -> None:
    url = await databases.new()
    engine = db.make_engine(url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True, "include_object": migrations.is_modelled}), metadata)
            )
        assert diff == [], diff
        assert await migrations.migrations_current(engine)
    finally:
        await engine.dispose()


async def test_downgrade_to_base_and_up_again(databases) -> None:
    url = await databases.new()
    engine = db.make_engine(url)
    try:
        await migrations.downgrade(engine, "base")
        assert await migrations.current_revision(engine) is None
        await migrations.upgrade(engine)
        assert await migrations.migrations_current(engine)
    finally:
        await engine.dispose()
