"""Categories become the closed list of docs/API.md (market.registry.categories): every stored
category is mapped to an id

- ``assets.category`` and ``listing_docs.category`` (search facets): an id stays; a
  Chinese or English name or a common synonym becomes its id (交通 / 交通运输 /
  transportation → ``transport``, 旅游 → ``tourism``); anything else becomes ``other``
  (``categories.canonical``).
- ``trade_stats`` and ``trade_stats_monthly`` (the regulator's overview): counts kept
  under an old value move to its id, added to the counts already kept there (two old
  values of one day, provider and region may meet under one id).

What was signed stays as it was signed: registration certificates, contracts and ledger
entries keep the category they were issued with (``market.oversight.stats`` and the
replay map a contract's category the same way when they count it). The search text of
existing listings still holds the old value until ``market search reindex`` rewrites it
with the category's id and names. Downgrade changes nothing: ids are valid free text.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-10
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from market.registry.categories import canonical

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = ("orders", "value", "refunds", "refunded_value")
STATS_KEYS = {
    "trade_stats": ("day", "currency", "category", "grade", "provider_id", "region"),
    "trade_stats_monthly": ("month", "currency", "category", "grade", "provider_id", "region"),
}


def _changes(bind: sa.Connection, table: sa.TableClause) -> dict[str, str]:
    """Old value -> id, for the values of ``table.category`` that are not ids."""
    values = bind.execute(sa.select(table.c.category).distinct()).scalars().all()
    return {v: canonical(v) for v in values if canonical(v) != v}


def _recategorise(bind: sa.Connection, name: str) -> None:
    table = sa.table(name, sa.column("category"))
    for old, new in _changes(bind, table).items():
        bind.execute(sa.update(table).where(table.c.category == old).values(category=new))


def _merge_stats(bind: sa.Connection, name: str, keys: tuple[str, ...]) -> None:
    """Move the counts under old values to their ids, adding up those that meet."""
    table = sa.table(name, *(sa.column(c) for c in (*keys, *MEASURES)))
    changes = _changes(bind, table)
    if not changes:
        return
    rows = bind.execute(sa.select(*table.c).where(table.c.category.in_(list(changes)))).mappings().all()
    bind.execute(sa.delete(table).where(table.c.category.in_(list(changes))))
    merged: dict[tuple[str, ...], dict[str, int]] = {}
    for row in rows:
        key = tuple(changes[row[c]] if c == "category" else row[c] for c in keys)
        slot = merged.setdefault(key, dict.fromkeys(MEASURES, 0))
        for m in MEASURES:
            slot[m] += int(row[m] or 0)
    for key, amounts in merged.items():
        where = [table.c[c] == v for c, v in zip(keys, key, strict=True)]
        added = bind.execute(sa.update(table).where(*where).values({m: table.c[m] + amounts[m] for m in MEASURES}))
        if added.rowcount == 0:
            bind.execute(sa.insert(table).values(**dict(zip(keys, key, strict=True)), **amounts))


def upgrade() -> None:
    bind = op.get_bind()
    for name in ("assets", "listing_docs"):
        _recategorise(bind, name)
    for name, keys in STATS_KEYS.items():
        _merge_stats(bind, name, keys)


def downgrade() -> None:
    pass  # ids are valid values of the free-text column; what they replaced is not kept
