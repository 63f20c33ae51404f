"""``market storage``: the operator's commands over the content's blob store (check,
migrate). Only click and the standard library are imported here: each command imports
what it needs when it runs, so that ``market --help`` stays fast."""

import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from market.core.config import Settings


def _settings() -> "Settings":
    from market.tools.cli import settings_or_exit

    return settings_or_exit()


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


@click.group("storage")
def storage_group() -> None:
    """The content's blob store (docs/storage.md)."""


async def _each_kept(settings: "Settings", act: Any) -> tuple[int, int]:
    """Run ``act(services, kept)`` for every revision whose blob the market keeps;
    print each problem it returns. (revisions, problems)."""
    from market.tools.stored import kept_revisions
    from market.wiring.services import close_services, open_services

    services = await open_services(settings, listen=False)
    count = problems = 0
    try:
        async for kept in kept_revisions(services):
            count += 1
            problem = await act(services, kept)
            if problem is not None:
                problems += 1
                click.echo(f"{kept.name()}: {problem}")
    finally:
        await close_services(services)
    return count, problems


def _storage_failure(exc: Exception) -> None:
    from market.storage import BlobStoreUnavailable

    if isinstance(exc, BlobStoreUnavailable):
        raise click.ClickException(f"{exc}. Check MARKET_BLOB_STORE, MARKET_S3_ENDPOINT_URL and the AWS_* "
                                   "credentials") from None
    raise exc


@storage_group.command("check")
def storage_check() -> None:
    """Read every kept revision's blob and check it against its registered commitment
    (the operator's fsck); each problem is one line. Exit 1 if there is one."""
    from market.tools.stored import check_blob

    settings = _settings()

    async def check(services: Any, kept: Any) -> str | None:
        return await check_blob(services.blobs, kept)

    try:
        count, problems = _run(_each_kept(settings, check))
    except Exception as exc:  # noqa: BLE001 - said in one line when it is the store's
        _storage_failure(exc)
    click.echo(f"checked {count} revisions: {problems} with problems", err=True)
    if problems:
        sys.exit(1)


@storage_group.command("migrate")
@click.option("--to", "target_url", required=True, metavar="s3://BUCKET/PREFIX",
              help="the store to copy every kept blob into")
def storage_migrate(target_url: str) -> None:
    """Copy every kept revision's blob from the configured store (MARKET_BLOB_STORE) into
    another, checking each copy against its commitment; blobs already there and right are
    left as they are, so it can be run again. Then set MARKET_BLOB_STORE to the new store.
    Exit 1 if a blob could not be copied right."""
    from market.storage import open_blob_store
    from market.tools.stored import copy_blob

    settings = _settings()
    if not target_url.startswith("s3://") or target_url.rstrip("/") == settings.blob_store.rstrip("/"):
        raise click.UsageError("--to must be an s3://bucket/prefix other than the configured store")
    target = open_blob_store(target_url, settings.s3_endpoint_url, settings.blobs_dir)

    async def copy(services: Any, kept: Any) -> str | None:
        return await copy_blob(services.blobs, target, kept)

    try:
        count, problems = _run(_each_kept(settings, copy))
    except Exception as exc:  # noqa: BLE001 - said in one line when it is the store's
        _storage_failure(exc)
    click.echo(f"copied {count - problems} of {count} revisions to {target.describe()}; {problems} with problems",
               err=True)
    if problems:
        sys.exit(1)
