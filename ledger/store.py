"""SQL tables of the ledger: pending entries, leaves, hash tiles, checkpoints, cosignatures.

- ``ledger_pending``: entries appended by business transactions, not yet given an
  index. Rows are written inside the caller's transaction (DESIGN §2.1).
- ``ledger_leaves``: integrated entries by index (the leaf bytes, docs/LEDGER.md §2).
- ``ledger_tiles``: C2SP tlog-tiles hash tiles of height 8, current contents (a
  partial tile grows until it holds 256 hashes, then never changes).
- ``ledger_checkpoints``: every checkpoint the market signed, by tree size.
- ``ledger_cosignatures``: witness cosignature lines (C2SP tlog-cosignature) per size.

Works unchanged on SQLite and PostgreSQL. Nothing here imports the market.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, Table, inspect
from sqlmodel import Field, SQLModel

from ledger._time import UTCDateTime


def table_of(model: type[SQLModel]) -> Table:
    """A table model's ``Table`` (SQLModel sets ``__table__`` without declaring it)."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


class PendingEntry(SQLModel, table=True):
    __tablename__ = "ledger_pending"

    # SQLite only autoincrements an INTEGER PRIMARY KEY, hence the variant.
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    # No index on subject: pending rows live for about a second, and a scan of so few
    # rows is cheaper than maintaining an index on every append.
    subject: str = Field(max_length=120)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # its time is inside


class Leaf(SQLModel, table=True):
    __tablename__ = "ledger_leaves"

    # On SQLite an INTEGER PRIMARY KEY is the rowid: no second index to maintain.
    idx: int = Field(sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                      autoincrement=False))
    subject: str = Field(max_length=120, index=True)
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Tile(SQLModel, table=True):
    __tablename__ = "ledger_tiles"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    __tablename__ = "ledger_checkpoints"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str
    created_at: datetime = Field(sa_type=UTCDateTime)


class Cosignature(SQLModel, table=True):
    __tablename__ = "ledger_cosignatures"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    key_id: str = Field(primary_key=True, max_length=8)
    name: str = Field(max_length=200)
    line: str
    timestamp: int = Field(sa_type=BigInteger)
