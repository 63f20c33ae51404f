"""``market``: serve, db, keys, admin, ledger, search, storage, demo, version; the parties' own
commands (``client``, ``regulator``, ``oversight replay``) are in ``market.tools.cli_parties``.

Imported at the top: click and the standard library only. Each command imports the
server's libraries (SQLAlchemy, Alembic, Litestar, pydantic settings) when it runs, so
``--help``, ``version`` and the client commands start at once.
"""

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from market import __version__
from market.tools.cli_parties import client_group, oversight_group, regulator_group
from market.tools.cli_storage import storage_group

if TYPE_CHECKING:
    from market.core.config import Settings


def settings_or_exit() -> "Settings":
    """The market's settings from the environment; a bad ``MARKET_*`` value ends the
    command with one line naming it."""
    from pydantic import ValidationError

    from market.core.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "MARKET_" + ".".join(str(p) for p in first.get("loc", ())).upper()
        raise click.ClickException(f"{name}: {first.get('msg', 'invalid')}") from None


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def _database_failure(exc: Exception) -> str:
    """One line saying what failed with the database and what to do."""
    from sqlalchemy.engine import make_url

    try:
        where = make_url(settings_or_exit().sqlalchemy_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - the message must not fail in turn
        where = "the database"
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if "no such table" in text or "does not exist" in text and "relation" in text:
        return f"{where} has no market tables yet ({text}): run 'market db upgrade'"
    return f"cannot use {where}: {text}. Check MARKET_DATABASE_URL (or MARKET_DATA_DIR) and that the database is up"


class _Market(click.Group):
    """Known failures (a missing key, an unreachable or unmigrated database) are one line
    that says what to do, with exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = _known_failure(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


def _known_failure(exc: Exception) -> str | None:
    """The one line for a known failure, or None. The modules whose errors are looked
    for are only those already loaded: an exception cannot come from a module that was
    never imported, and importing SQLAlchemy here would slow every command."""
    keys, sqlalchemy_errors = sys.modules.get("market.core.keys"), sys.modules.get("sqlalchemy.exc")
    if keys is not None and isinstance(exc, keys.KeyFileError):
        return str(exc)
    if sqlalchemy_errors is not None and isinstance(exc, sqlalchemy_errors.DBAPIError):  # Operational, Programming
        return _database_failure(exc)
    if isinstance(exc, ConnectionError) and sqlalchemy_errors is not None:
        return _database_failure(exc)  # a database server that does not answer (asyncpg raises it bare)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return None


@click.group(cls=_Market)
def main() -> None:
    """Data-element market: registration, trading and oversight with an audit ledger."""


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(__version__)


# -- db ------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from market.core import db, migrations

    settings = settings_or_exit()

    async def go() -> str | None:
        engine = db.make_engine(settings.sqlalchemy_url)
        try:
            await migrations.upgrade(engine, revision)
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at {_run(go())}", err=True)


@db_group.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from market.core import db, migrations

    settings = settings_or_exit()

    async def go() -> str | None:
        engine = db.make_engine(settings.sqlalchemy_url)
        try:
            return await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(_run(go()) or "none")


@db_group.command("check")
def db_check() -> None:
    """Exit 1 unless the database is at the newest migration."""
    from market.core import db, migrations

    settings = settings_or_exit()

    async def go() -> tuple[str | None, str | None]:
        engine = db.make_engine(settings.sqlalchemy_url)
        try:
            return await migrations.current_revision(engine), migrations.head_revision()
        finally:
            await engine.dispose()

    current, head = _run(go())
    if current != head:
        click.echo(f"database at {current}, code at {head}: run 'market db upgrade'", err=True)
        sys.exit(1)
    click.echo(f"database current at {head}")


# -- keys ----------------------------------------------------------------------


@main.group("keys")
def keys_group() -> None:
    """The market's ledger signing key."""


@keys_group.command("init")
def keys_init() -> None:
    """Create the two keys if missing (mode 0600): the ledger signing key and the master
    key that wraps content keys — unless the database already holds what a missing key
    signed or wrapped: then refuse, exit 1. Deploy the same two to every machine."""
    from market.core import db
    from market.core.keycheck import refuse_new_keys
    from market.core.keys import init_ledger_key, ledger_key_path
    from market.storage import MasterKey

    settings = settings_or_exit()

    async def check() -> None:
        engine = db.make_engine(settings.sqlalchemy_url)
        try:
            await refuse_new_keys(engine, settings.keys_dir, settings.blobs_dir)
        finally:
            await engine.dispose()

    _run(check())
    _, created = init_ledger_key(settings.keys_dir)
    path = ledger_key_path(settings.keys_dir)
    click.echo(f"{'created' if created else 'kept'} {path}", err=True)
    master = settings.keys_dir / "master.key"
    existed = master.exists()
    MasterKey.load_or_create(master)
    click.echo(f"{'kept' if existed else 'created'} {master}", err=True)


@keys_group.command("show")
def keys_show() -> None:
    """Print the ledger's verifier key (vkey)."""
    from ledger.note import Signer
    from market.core.keys import load_ledger_key

    settings = settings_or_exit()
    click.echo(Signer(settings.ledger_origin, load_ledger_key(settings.keys_dir)).vkey)


# -- admin ---------------------------------------------------------------------


async def _create_staff(settings: "Settings", name: str, role: str) -> str:
    from market.wiring.bootstrap import create_staff_account

    return await create_staff_account(settings, name, role)


@main.group("admin")
def admin_group() -> None:
    """Accounts made from the command line."""


@admin_group.command("create-operator")
@click.option("--name", required=True)
def create_operator(name: str) -> None:
    """Create an operator account; print only its token."""
    click.echo(_run(_create_staff(settings_or_exit(), name, "operator")))


@admin_group.command("create-regulator")
@click.option("--enrollment", "enrollment", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the enrollment file the regulator authority signed ('market regulator enroll')")
def create_regulator(enrollment: Path) -> None:
    """Create the regulator an authority enrolled (checked against MARKET_REGULATOR_AUTHORITY);
    print its token as the last line."""
    from market.accounts.enrollment import EnrollmentError
    from market.core.errors import DomainError
    from market.wiring.bootstrap import create_regulator_account

    settings = settings_or_exit()
    try:
        content = enrollment.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read the enrollment {enrollment}: {exc.strerror}") from None

    async def go() -> str:
        return await create_regulator_account(settings, content)

    try:
        token = _run(go())
    except EnrollmentError as exc:
        raise click.ClickException(f"{enrollment}: {exc}; no regulator was created") from None
    except DomainError as exc:
        raise click.ClickException(f"{enrollment}: {exc.detail}; no regulator was created") from None
    click.echo(token)


# -- regulator authority -----------------------------------------------------------


# -- ledger --------------------------------------------------------------------


@main.group("ledger")
def ledger_group() -> None:
    """The audit ledger."""


@ledger_group.command("integrate")
def ledger_integrate() -> None:
    """Integrate every pending entry now and print the new checkpoint."""
    from market.wiring.bootstrap import open_ledger

    settings = settings_or_exit()

    async def go() -> str:
        engine, maker, log = await open_ledger(settings)
        try:
            total = 0
            while True:
                async with maker() as session:
                    n = await log.integrate(session)
                total += n
                if n == 0:
                    break
            async with maker() as session:
                await log.ensure_started(session)
            async with maker() as session:
                cp = await log.checkpoint(session)
            click.echo(f"integrated {total} entries", err=True)
            return cp.text
        finally:
            await engine.dispose()

    click.echo(_run(go()), nl=False)


@ledger_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def ledger_export(directory: Path) -> None:
    """Write the log as a C2SP tlog-tiles tree into DIRECTORY (for verify-log)."""
    from market.wiring.bootstrap import export_ledger

    count = _run(export_ledger(settings_or_exit(), directory))
    click.echo(f"exported {count} entries to {directory}", err=True)


# -- client-side helpers ----------------------------------------------------------


# -- serve ---------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="default MARKET_HOST")
@click.option("--port", type=int, default=None, help="default MARKET_PORT")
@click.option("--workers", type=int, default=None, help="default MARKET_WORKERS")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Migrate, make keys, bootstrap an operator on an empty database, and serve the API."""
    import uvicorn

    from market.wiring.bootstrap import prepare

    settings = settings_or_exit()
    token = _run(prepare(settings))
    if token:
        click.echo("An operator account was created on this empty database. Its token, shown once:", err=True)
        click.echo(token)
    supervisor = None
    if settings.background_tasks and settings.worker == "process":
        # One worker process does the market's own work; the API processes only keep
        # their view of the ledger fresh (market.wiring.worker).
        from market.wiring.worker import Supervisor

        supervisor = Supervisor(os.environ)
        supervisor.start()
        os.environ["MARKET_WORKER"] = "elsewhere"  # read by the API processes' settings
    try:
        uvicorn.run(
            "market.web.app:app_from_env",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
            log_level=settings.log_level.lower(),
            access_log=False,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()


@main.command()
@click.option("--parent", type=int, default=None, hidden=True, help="stop when this process is gone")
def work(parent: int | None) -> None:
    """Do the market's own work (ledger integration, the clock, notifications, DSP
    callbacks) until stopped; ``market serve`` runs one itself unless MARKET_WORKER says otherwise."""
    from market.wiring.worker import work as run_work

    _run(run_work(settings_or_exit(), parent))


# -- search ----------------------------------------------------------------------


@main.group("search")
def search_group() -> None:
    """Listing search."""


@search_group.command("reindex")
def search_reindex() -> None:
    """Rebuild every listing's search document (after an upgrade that changes segmentation)."""
    from market.core import db
    from market.listings import index

    settings = settings_or_exit()

    async def go() -> int:
        engine = db.make_engine(settings.sqlalchemy_url)
        try:
            async with db.make_sessionmaker(engine)() as session:
                count = await index.reindex(session)
                await session.commit()
            return count
        finally:
            await engine.dispose()

    click.echo(f"reindexed {_run(go())} listings")


# -- demo ----------------------------------------------------------------------


@main.command()
@click.option("--notice-period", default=None, metavar="DURATION",
              help="public notice of the demo's registrations (e.g. 0); default MARKET_NOTICE_PERIOD. "
                   "For a throwaway demo database only")
@click.option("--trades", default=None, type=click.IntRange(min=0), metavar="N",
              help="settled orders in the trading history (default 360; 0: none)")
@click.option("--tokens", "show_tokens", is_flag=True,
              help="print every demo party's name, roles and token again (from the data directory); changes nothing")
def demo(notice_period: str | None, trades: int | None, show_tokens: bool) -> None:
    """Seed a demo exchange (parties, registered assets, listings, a regulator, months of
    trading) through the services; idempotent. With --tokens, print the demo's tokens."""
    from market.core.config import parse_duration
    from market.demo.seed import TRADES, DemoRefused, report, seed, tokens

    try:
        if show_tokens:
            click.echo("\n".join(tokens(settings_or_exit())))
            return
        notice = None if notice_period is None else parse_duration(notice_period)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--notice-period") from None
    except DemoRefused as exc:
        raise click.ClickException(str(exc)) from None
    try:
        summary = _run(seed(settings_or_exit(), notice, TRADES if trades is None else trades))
    except DemoRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n".join(report(summary)))


main.add_command(client_group)
main.add_command(oversight_group)
main.add_command(regulator_group)
main.add_command(storage_group)

if __name__ == "__main__":
    main()
