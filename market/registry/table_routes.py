"""An asset's table description (docs/API.md "Usage-controlled delivery").

    PUT /v1/assets/{id}/table   the holder: describe the registered content → 201 the first time, then 200
    GET /v1/assets/{id}/table   whoever sees the asset: names, types, roles, row_count
"""

from litestar import Response, get, put
from sqlmodel.ext.asyncio.session import AsyncSession

from market.core.context import Ctx
from market.core.errors import NotFound
from market.registry import access, tables
from market.registry.tables import TableDescription, TableRead


@put("/v1/assets/{asset_id:str}/table", tags=["registry"],
     summary="Describe the registered content as a table (holder); checked against the content")
async def describe_table(db: AsyncSession, ctx: Ctx, asset_id: str, data: TableDescription) -> Response[TableRead]:
    checked = await tables.check_against_content(ctx, asset_id, data)  # the slow part, holding no write lock
    table, created = await tables.describe(db, ctx, asset_id, data, checked)
    await db.commit()
    asset = await access.load(db, asset_id, ctx.caller)
    return Response(tables.read(table, asset), status_code=201 if created else 200)


@get("/v1/assets/{asset_id:str}/table", tags=["registry"], summary="The asset's table description")
async def get_table(db: AsyncSession, maybe_ctx: Ctx, asset_id: str) -> TableRead:
    asset = await access.load(db, asset_id, maybe_ctx.caller)
    table = await db.get(tables.AssetTable, asset.id)
    if table is None:
        raise NotFound(f"asset {asset_id} has no table description")
    return tables.read(table, asset)


TABLE_ROUTES = [describe_table, get_table]
