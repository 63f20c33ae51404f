"""Trade statistics kept in shard rows per key, so concurrent settlements on PostgreSQL
add to rows of their own instead of queueing on one row's lock (readers sum the shards)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = ["currency", "category", "grade", "provider_id", "region"]
MEASURES = ["orders", "value", "refunds", "refunded_value"]
# table, its unique key (without the shard), the constraint naming it
UNIQUE = [("trade_stats", ["day", *DIMENSIONS], "uq_trade_stats_key"),
          ("trade_stats_monthly", ["month", *DIMENSIONS], "uq_trade_stats_monthly_key")]


def _shard() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    for table, key, name in UNIQUE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_shard())
            batch.drop_constraint(name, type_="unique")
            batch.create_unique_constraint(name, [*key, "shard"])
    _rekey_days(["day", "currency", "shard"])


def _rekey_days(key: list[str]) -> None:
    """``trade_days`` with ``key`` as its primary key: altered on PostgreSQL; copied into a
    table made anew on SQLite (whose batch copy would keep the reflected key's columns)."""
    with_shard = "shard" in key
    if op.get_bind().dialect.name == "postgresql":
        with op.batch_alter_table("trade_days") as batch:
            if with_shard:
                batch.add_column(_shard())
            batch.drop_constraint("trade_days_pkey", type_="primary")
            batch.create_primary_key("trade_days_pkey", key)
            if not with_shard:
                batch.drop_column("shard")
        return
    op.create_table("_trade_days_rekeyed",
                    sa.Column("day", sa.String(length=10), nullable=False),
                    sa.Column("currency", sa.String(length=3), nullable=False),
                    *([_shard()] if with_shard else []),
                    *(sa.Column(m, sa.BigInteger(), nullable=False) for m in MEASURES),
                    sa.PrimaryKeyConstraint(*key))
    columns = ", ".join(["day", "currency", *MEASURES])
    op.execute(f"INSERT INTO _trade_days_rekeyed ({columns}) SELECT {columns} FROM trade_days")
    op.drop_table("trade_days")
    op.rename_table("_trade_days_rekeyed", "trade_days")


def _fold(table: str, key: list[str]) -> None:
    """Each key's shards summed into one row (shard 0), so the key is unique without them."""
    bind = op.get_bind()
    columns = ", ".join(key)
    sums = ", ".join(f"SUM({m})" for m in MEASURES)
    rows = bind.execute(sa.text(f"SELECT {columns}, {sums} FROM {table} GROUP BY {columns}")).all()
    bind.execute(sa.text(f"DELETE FROM {table}"))
    if rows:
        names = [*key, *MEASURES]
        bind.execute(sa.text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"),
                     [dict(zip(names, row, strict=True)) for row in rows])


def downgrade() -> None:
    _fold("trade_days", ["day", "currency"])
    _rekey_days(["day", "currency"])
    for table, key, name in UNIQUE:
        _fold(table, key)
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(name, type_="unique")
            batch.create_unique_constraint(name, key)
            batch.drop_column("shard")
