"""Proofs as the log serves them: from tiles in memory, from the database when memory
lacks a tile, after eviction and after the tree has grown. (Proofs from tiles in
memory alone, across tile levels, are in tests/ledger/test_ledger_tiles.py.)"""

import random

import pytest

from ledger import merkle
from ledger.log import Log, NotFoundError
from tests.ledger_support import ORIGIN, ledger_database


@pytest.fixture
async def filled(databases, tmp_path):
    """A log of 700 entries integrated in uneven batches, and its leaf hashes."""
    async with ledger_database(databases, tmp_path) as ldb:
        sizes = []
        for batch in (3, 250, 10, 300, 137):
            await ldb.append(batch)
            async with ldb.maker() as session:
                await ldb.log.integrate(session)
            async with ldb.maker() as session:
                sizes.append(await ldb.log.size(session))
        async with ldb.maker() as session:
            leaves = [leaf for _, leaf in await ldb.log.leaves(session, 0, 1000)]
        yield ldb.key, ldb.maker, [merkle.leaf_hash(leaf) for leaf in leaves], sizes


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


async def test_a_bundle_begun_before_the_held_checkpoint_is_proved_by_its_own(databases, tmp_path) -> None:
    """A bundle takes the checkpoint the process holds when it covers the entry; when the
    request's transaction began before that checkpoint's tiles were written (its snapshot
    is older than the process's memory), the bundle is proved by the checkpoint that
    transaction reads instead. Either way the proof holds against the bundle's checkpoint."""
    import base64

    from market.core import db
    from market.registry.certificates import bundle

    async with ledger_database(databases, tmp_path) as ldb:
        await ldb.append(5, subject="test:old")
        await ldb.integrate()  # the log remembers size 5
        async with ldb.maker() as session:
            leaf = await ldb.log.leaf(session, 2)
            held = await bundle(session, ldb.log, "test:old", "{}", leaf)
        _, reader = db.make_engines(ldb.url)  # a read session, as a GET's
        try:
            async with db.make_read_sessionmaker(reader)() as old:
                if not db.is_sqlite(ldb.url):  # a snapshot kept, as SQLite's read transaction keeps one
                    await old.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                assert await ldb.log.index_of(old, "test:old", leaf) == 2  # its snapshot: 5 entries
                await ldb.append(300)
                await ldb.integrate()  # the log remembers size 305, whose tiles the old snapshot lacks
                assert ldb.log.remembered(2, 60.0) is not None
                fallen_back = await bundle(old, ldb.log, "test:old", "{}", leaf)
        finally:
            await reader.dispose()
        async with ldb.maker() as session:
            fresh = await bundle(session, ldb.log, "test:old", "{}", leaf)
        sizes = []
        for made in (held, fallen_back, fresh):
            text = made["ledger"]["checkpoint"]
            size, root = int(text.split("\n")[1]), base64.b64decode(text.split("\n")[2])
            proof = [base64.b64decode(h) for h in made["ledger"]["inclusion_proof"]]
            merkle.verify_inclusion(2, size, merkle.leaf_hash(leaf), proof, root)
            sizes.append(size)
        assert sizes == [5, 5, 305]
