"""An asset's table description (docs/API.md "Usage-controlled delivery"): what a sandbox or a
metered look-up may touch, checked against the registered content itself.

The holder describes the registered content as a table: each column's type and role
(``dimension``, ``measure``, ``entity``, ``key``, ``hidden``), the smallest group a result
may show (``min_group``) and an optional epsilon budget per order. The market loads the
content as described (:mod:`market.sandbox.engine`) and refuses a description that does
not fit it, naming the first mismatch. The description's hash goes on the ledger
(``asset.table_described``), so a buyer and a regulator can tell which rules a query ran
under. A new registered revision needs the description checked again: until then the
asset's sandbox and api plans are not orderable (the description names its revision).
"""

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal, Protocol

import anyio.to_thread
import rfc8785
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Column as SAColumn
from sqlalchemy import Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.schemas import Strict
from market.core import audit
from market.core.context import Ctx
from market.core.errors import Conflict, InvalidTransition, NotFound, Unprocessable
from market.core.money import JsonInt
from market.core.types import JsonBool, UTCDateTime
from market.registry import access
from market.registry.models import Asset, AssetRevision
from market.sandbox.engine import Column as EngineColumn
from market.sandbox.engine import Loaded, TableMismatch, load

ColumnType = Literal["text", "integer", "decimal", "date", "boolean"]
Role = Literal["dimension", "measure", "entity", "key", "hidden"]
MAX_COLUMNS = 200


class AssetTable(SQLModel, table=True):
    """The current table description of an asset, as checked against ``revision``."""

    __tablename__ = "asset_tables"

    asset_id: str = SQLField(foreign_key="assets.id", primary_key=True, max_length=40)
    revision: int  # the registered revision it was checked against
    format: str = SQLField(max_length=10)
    columns: str = SQLField(sa_column=SAColumn(Text, nullable=False))  # JSON list, as given
    min_group: int
    epsilon_budget: float | None = None
    row_count: int
    sha256: str = SQLField(max_length=64)  # of the canonical description
    updated_at: datetime = SQLField(sa_type=UTCDateTime)


class TableColumn(Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_\u4e00-\u9fff][A-Za-z0-9_\u4e00-\u9fff]*$")
    type: ColumnType
    role: Role
    bounds: list[float] | None = Field(default=None, min_length=2, max_length=2,
                                       description="measures under an epsilon budget: [lowest, highest] a value "
                                                   "counts as (values outside are clamped)")


class TableDescription(Strict):
    format: Literal["csv", "parquet"]
    columns: list[TableColumn] = Field(min_length=1, max_length=MAX_COLUMNS)
    min_group: JsonInt = Field(default=10, ge=1, le=1_000_000)
    epsilon_budget: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _rules(self) -> "TableDescription":
        names = [c.name.lower() for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("each column is named once (names are compared without case)")
        for column in self.columns:
            if column.role == "measure" and column.type not in ("integer", "decimal"):
                raise ValueError(f"measure {column.name} must be an integer or decimal column")
            if column.bounds is not None:
                if column.role != "measure":
                    raise ValueError(f"only measures take bounds ({column.name} is a {column.role})")
                if column.bounds[0] > column.bounds[1]:
                    raise ValueError(f"the bounds of {column.name} are [lowest, highest]")
            if self.epsilon_budget is not None and column.role == "measure" and column.bounds is None:
                raise ValueError(f"under an epsilon budget, measure {column.name} needs bounds")
        return self


class TableRead(BaseModel):
    asset_id: str
    revision: int
    format: str
    columns: list[dict[str, Any]]
    min_group: int
    epsilon_budget: float | None
    row_count: int
    sha256: str
    updated_at: datetime
    current: JsonBool = Field(description="whether it was checked against the registered revision")


def read(table: AssetTable, asset: Asset) -> TableRead:
    return TableRead(asset_id=table.asset_id, revision=table.revision, format=table.format,
                     columns=json.loads(table.columns), min_group=table.min_group,
                     epsilon_budget=table.epsilon_budget, row_count=table.row_count, sha256=table.sha256,
                     updated_at=table.updated_at, current=table.revision == asset.registered_revision)


def engine_columns(description: TableDescription | list[dict[str, Any]]) -> list[EngineColumn]:
    columns = description.columns if isinstance(description, TableDescription) else [
        TableColumn.model_validate(c) for c in description]
    return [EngineColumn(c.name, c.type, c.role) for c in columns]


async def content_of(ctx: Ctx, asset: Asset, revision: AssetRevision) -> bytes:
    """The decrypted content of one revision, in memory (never on disk in the clear)."""
    services = ctx.services
    data_key = services.content_key().unwrap(asset.id, asset.wrapped_key)
    pieces = []
    async for piece in services.blobs.open_range(revision.blob_id, data_key):
        pieces.append(bytes(piece))
    return b"".join(pieces)


async def check_against_content(ctx: Ctx, asset_id: str, description: TableDescription) -> tuple[int, int]:
    """Load the registered content as described, on a read session (no write lock is held while a
    large table loads): ``(revision, row_count)``, or 422 naming the first mismatch."""
    assert ctx.caller is not None
    async with ctx.services.read_sessionmaker() as session:
        asset = await access.load_for_holder(session, asset_id, ctx.caller)
        revision = await _registered(session, asset)
    limit = ctx.settings.sandbox_max_content
    if revision.size > limit:
        raise Unprocessable(f"the content is {revision.size} bytes; a table may be at most {limit} bytes",
                            kind="content-too-large-for-table")
    content = await content_of(ctx, asset, revision)
    columns = engine_columns(description)
    try:
        loaded = await anyio.to_thread.run_sync(lambda: load(content, description.format, columns))
    except TableMismatch as exc:
        raise Unprocessable(str(exc), kind="table-mismatch", extra={"errors": [{"field": "columns",
                                                                                "message": str(exc)}]}) from None
    row_count = loaded.row_count
    loaded.close()
    return revision.revision, row_count


async def _registered(session: AsyncSession, asset: Asset) -> AssetRevision:
    if asset.registered_revision == 0:
        raise InvalidTransition(f"asset {asset.id}", asset.status, "describing its table (it has no registered content)")
    revision = await session.get(AssetRevision, (asset.id, asset.registered_revision))
    if revision is None:
        raise NotFound(f"asset {asset.id} has no registered content")
    return revision


async def describe(session: AsyncSession, ctx: Ctx, asset_id: str, description: TableDescription,
                   checked: tuple[int, int]) -> tuple[AssetTable, bool]:
    """Keep a description ``check_against_content`` found to fit ``checked`` = (revision, rows);
    409 if another revision was registered meanwhile. (table, created)."""
    assert ctx.caller is not None
    asset = await access.load_for_holder(session, asset_id, ctx.caller)
    revision = await _registered(session, asset)
    if revision.revision != checked[0]:
        raise Conflict(f"asset {asset.id} registered revision {revision.revision} while the description was "
                       f"checked against revision {checked[0]}; send it again", kind="concurrent-update")
    row_count = checked[1]
    given = description.model_dump(mode="json")
    digest = hashlib.sha256(rfc8785.dumps(given)).hexdigest()
    table = await session.get(AssetTable, asset.id)
    created = table is None
    if table is None:
        table = AssetTable(asset_id=asset.id, revision=revision.revision, format=description.format,
                           columns="", min_group=0, row_count=0, sha256="", updated_at=ctx.now)
    table.revision, table.format = revision.revision, description.format
    table.columns = json.dumps(given["columns"], ensure_ascii=False)
    table.min_group, table.epsilon_budget = description.min_group, description.epsilon_budget
    table.row_count, table.sha256, table.updated_at = row_count, digest, ctx.now
    session.add(table)
    await audit.record(session, ctx, "asset.table_described", f"asset:{asset.id}", ctx.caller.id,
                       {"revision": revision.revision, "table_sha256": digest, "row_count": row_count})
    return table, created


async def current(session: AsyncSession, asset: Asset) -> AssetTable | None:
    """The description checked against the asset's registered revision, if there is one."""
    table = await session.get(AssetTable, asset.id)
    if table is None or table.revision != asset.registered_revision:
        return None
    return table


class Described(Protocol):
    """What loading a described table reads of its description (a row, or its columns)."""

    @property
    def revision(self) -> int: ...
    @property
    def format(self) -> str: ...
    @property
    def columns(self) -> str: ...
    @property
    def epsilon_budget(self) -> float | None: ...
    @property
    def sha256(self) -> str: ...


@asynccontextmanager
async def loaded(ctx: Ctx, asset_id: str, table: Described) -> AsyncIterator[Loaded]:
    """The described table, loaded (or kept) by this process; used as ``async with``."""
    settings = ctx.settings

    async def make() -> Loaded:
        async with ctx.services.read_sessionmaker() as session:
            asset = await session.get_one(Asset, asset_id)
            revision = await session.get_one(AssetRevision, (asset_id, table.revision))
        content = await content_of(ctx, asset, revision)
        described = [TableColumn.model_validate(c) for c in json.loads(table.columns)]
        columns = [EngineColumn(c.name, c.type, c.role) for c in described]
        clamp = ({c.name.lower(): (c.bounds[0], c.bounds[1]) for c in described if c.bounds}
                 if table.epsilon_budget is not None else None)
        return await anyio.to_thread.run_sync(
            lambda: load(content, table.format, columns, memory=settings.sandbox_memory, clamp=clamp))

    async with ctx.services.sandbox.use((asset_id, table.revision, table.sha256), make) as table_:
        yield table_
