"""Proofs as the log serves them: from tiles in memory, from the database when memory
lacks a tile, across tile levels, after eviction and after the tree has grown."""

import random

import pytest

from ledger import merkle, tiles
from ledger.log import Log, NotFoundError, _TileMemory
from market import db
from market.keys import init_ledger_key

ORIGIN = "proofs.test.example/log"


class _Dict:
    def __init__(self, data: dict) -> None:
        self.data = data

    def read_tiles(self, keys):
        return {k: self.data[k] for k in keys if k in self.data}


def test_memory_proofs_across_three_tile_levels() -> None:
    # 70,000 leaves: level-0, level-1 and level-2 tiles, full and partial ones.
    rng = random.Random(7)
    hashes = [rng.randbytes(32) for _ in range(70_000)]
    stored: dict = {}
    size = 0
    for step in (1, 255, 256, 513, 65_000, 3_975):  # tiles rewritten as the tree grows
        size, _, changed = tiles.integrate(size, hashes[size:size + step], _Dict(stored))
        stored.update(changed)
    assert size == 70_000 and {level for level, _ in stored} == {0, 1, 2}
    memory = _TileMemory(limit=10_000)
    for key, data in stored.items():
        memory.keep(key, data)
    sizes = [1, 2, 255, 256, 257, 65_535, 65_536, 65_537, 69_999, 70_000] + [rng.randint(1, size) for _ in range(40)]
    for n in sizes:
        assert merkle.tree_root(n, memory) == merkle.root(hashes[:n])
        for index in {0, n - 1, rng.randrange(n)}:
            assert merkle.prove_inclusion(index, n, memory) == merkle.inclusion_proof(index, n, hashes)
        for m in {0, 1, n, rng.randint(1, n)}:
            assert merkle.prove_consistency(m, n, memory) == merkle.consistency_proof(m, n, hashes)


def test_a_short_tile_in_memory_is_not_used_for_a_larger_tree() -> None:
    hashes = [bytes([i]) * 32 for i in range(10)]
    memory = _TileMemory(limit=4)
    memory.keep((0, 0), b"".join(hashes[:4]))
    assert merkle.tree_root(4, memory) == merkle.root(hashes[:4])
    with pytest.raises(Exception) as exc:
        merkle.tree_root(6, memory)
    assert type(exc.value).__name__ == "_NeedTile"
    memory.keep((0, 0), b"".join(hashes[:3]))  # older, shorter data never replaces longer
    assert merkle.tree_root(4, memory) == merkle.root(hashes[:4])
    memory.keep((0, 0), b"".join(hashes))
    assert merkle.tree_root(10, memory) == merkle.root(hashes)


@pytest.fixture
async def filled(databases, tmp_path):
    """A log of 700 entries integrated in uneven batches, and its leaf hashes."""
    url = await databases.new()
    key, _ = init_ledger_key(tmp_path / "keys")
    engine = db.make_engine(url)
    maker = db.make_sessionmaker(engine)
    writer = Log(key, ORIGIN)
    sizes = []
    for batch in (3, 250, 10, 300, 137):
        async with maker() as session:
            await writer.append_many(session, [("test.entry", f"s:{i}", "acc_test", {"n": i}) for i in range(batch)])
            await session.commit()
        async with maker() as session:
            await writer.integrate(session)
        async with maker() as session:
            sizes.append(await writer.size(session))
    async with maker() as session:
        leaves = [leaf for _, leaf in await writer.leaves(session, 0, 1000)]
    yield key, maker, [merkle.leaf_hash(leaf) for leaf in leaves], sizes
    await engine.dispose()


async def test_proofs_from_the_database_with_one_tile_of_memory(filled) -> None:
    key, maker, hashes, sizes = filled
    assert sizes == [3, 253, 263, 563, 700]
    log = Log(key, ORIGIN, tile_memory=1)  # every proof reads tiles back after eviction
    rng = random.Random(3)
    for _ in range(60):
        n = rng.randint(1, 700)
        index = rng.randrange(n)
        root, path = await log.inclusion_proof(maker, index, n)
        assert root == merkle.root(hashes[:n]) and path == merkle.inclusion_proof(index, n, hashes)
        m = rng.randint(0, n)
        assert await log.consistency_proof(maker, m, n) == merkle.consistency_proof(m, n, hashes)


async def test_a_log_that_saw_a_smaller_tree_reads_the_grown_tiles(filled, databases) -> None:
    key, maker, hashes, _ = filled
    log = Log(key, ORIGIN)
    async with maker() as session:
        assert await log.warm(session) == 4  # tiles 0/0, 0/1, 0/2 (partial), 1/0 (partial)
        await log.append_many(session, [("test.entry", f"t:{i}", "acc_test", {"n": i}) for i in range(100)])
        await session.commit()
    async with maker() as session:
        await log.integrate(session)
    async with maker() as session:
        leaves = [leaf for _, leaf in await log.leaves(session, 0, 1000)]
    grown = [merkle.leaf_hash(leaf) for leaf in leaves]
    assert grown[:700] == hashes and len(grown) == 800
    # Sizes 701..800 need the longer tiles: read once, then served from memory.
    for n in (701, 768, 800):
        root, path = await log.inclusion_proof(maker, n - 1, n)
        assert root == merkle.root(grown[:n]) and path == merkle.inclusion_proof(n - 1, n, grown)
        assert await log.consistency_proof(maker, 700, n) == merkle.consistency_proof(700, n, grown)


async def test_proofs_beyond_the_log_are_not_found(filled) -> None:
    key, maker, _, _ = filled
    log = Log(key, ORIGIN)
    async with maker() as session:  # a session works as well as a session factory
        for index, size in ((0, 701), (700, 700), (-1, 5), (5, 5)):
            with pytest.raises(NotFoundError):
                await log.inclusion_proof(session, index, size)
        for first, second in ((0, 701), (6, 5), (-1, 3)):
            with pytest.raises(NotFoundError):
                await log.consistency_proof(session, first, second)
        assert await log.consistency_proof(session, 0, 700) == []
        assert await log.consistency_proof(session, 700, 700) == []
