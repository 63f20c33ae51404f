"""Start-up chores shared by the CLI: migrate, keys, the first operator, ledger export."""

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from ledger import tiles
from ledger.log import Log
from market.accounts import service
from market.accounts.enrollment import check_enrollment
from market.accounts.models import Account
from market.accounts.regulators import create_regulator
from market.accounts.schemas import AccountCreate, Role
from market.core import db, migrations
from market.core.config import Settings
from market.core.context import Ctx
from market.core.keycheck import refuse_new_keys
from market.core.keys import init_ledger_key
from market.core.types import utcnow
from market.wiring import services as wiring


async def ledger_key(settings: Settings, engine: AsyncEngine) -> Ed25519PrivateKey:
    """The ledger key, made only if nothing in the database needs an existing one
    (``market.core.keycheck``)."""
    await refuse_new_keys(engine, settings.keys_dir, settings.blobs_dir)
    private_key, _ = init_ledger_key(settings.keys_dir)
    return private_key


async def open_ledger(settings: Settings) -> tuple[AsyncEngine, db.SessionMaker, Log]:
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        private_key = await ledger_key(settings, engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine, db.make_sessionmaker(engine), Log(private_key, settings.ledger_origin)


async def create_staff_account(settings: Settings, name: str, role: str) -> str:
    """Create a verified operator account and return its token (a regulator is made only
    from an enrollment: ``create_regulator_account``)."""
    async with wiring.services(settings, content=False, listen=False) as services:
        async with services.sessionmaker() as session:
            data = AccountCreate(name=name, kind="institution", roles=[Role(role)])
            ctx = Ctx(caller=None, now=utcnow(), services=services)
            _, token = await service.create_account(session, ctx, data, bootstrap=True)
            await session.commit()
    return token


async def create_regulator_account(settings: Settings, enrollment_file: bytes) -> str:
    """Check the enrollment file against ``settings.regulator_authority``, create the
    verified regulator account with the enrolled key, and return its token. Raises
    ``EnrollmentError`` (bad enrollment, wrong or no authority) or a domain ``Conflict``."""
    enrollment = check_enrollment(enrollment_file, settings.regulator_authority)
    async with wiring.services(settings, content=False, listen=False) as services:
        async with services.sessionmaker() as session:
            ctx = Ctx(caller=None, now=utcnow(), services=services)
            _, token = await create_regulator(session, ctx, enrollment)
            await session.commit()
    return token


async def prepare(settings: Settings) -> str | None:
    """Migrate, create the ledger key (never beside a database that needs the old
    one: ``market.core.keycheck``), and on an empty database create an operator.

    Returns the new operator's token when one was created.
    """
    engine = db.make_engine(settings.sqlalchemy_url)
    try:
        await migrations.upgrade(engine)
        await ledger_key(settings, engine)
        async with db.make_sessionmaker(engine)() as session:
            count = (await session.exec(select(func.count()).select_from(Account))).one()
        if count:
            return None
        return await create_staff_account(settings, "operator", "operator")
    finally:
        await engine.dispose()


async def export_ledger(settings: Settings, directory: Path) -> int:
    """Write checkpoint, entry bundles and hash tiles as files, as served under /v1/ledger/tlog/."""
    engine, maker, log = await open_ledger(settings)
    try:
        async with maker() as session:
            cp = await log.checkpoint(session)
            size = cp.size
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "checkpoint").write_text(cp.text, encoding="utf-8")
            for index in range((size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
                width = min(tiles.TILE_WIDTH, size - index * tiles.TILE_WIDTH)
                _write(directory / tiles.entries_path(index, width), await log.entry_bundle(session, index, width))
            level, count = 0, size
            while count > 0:
                for index in range((count + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
                    width = min(tiles.TILE_WIDTH, count - index * tiles.TILE_WIDTH)
                    _write(directory / tiles.tile_path(level, index, width), await log.tile(session, level, index, width))
                level, count = level + 1, count // tiles.TILE_WIDTH
        return size
    finally:
        await engine.dispose()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
