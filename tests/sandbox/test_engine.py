"""The sandbox's engine: the table as described or a named mismatch, the lock, suppression, limits."""

import io
from collections import defaultdict
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.sandbox.engine import Column, QueryFailed, TableMismatch, Wanted, load
from market.sandbox.noise import add_noise, figures
from market.sandbox.rules import Columns, check

COLUMNS = [Column("uid", "text", "entity"), Column("City", "text", "dimension"), Column("day", "date", "dimension"),
           Column("amount", "integer", "measure"), Column("paid", "boolean", "dimension"),
           Column("phone", "text", "hidden")]
ROLES = Columns({c.name.lower(): c.role for c in COLUMNS})


def csv_of(rows: list[tuple[Any, ...]]) -> bytes:
    lines = ["uid,City,day,amount,paid,phone"] + [",".join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


ROWS = [(f"u{i % 40}", ["sz", "gz", "bj"][i % 3] if i < 290 else "tiny", f"2026-0{1 + i % 3}-15", i % 17,
         "true" if i % 2 else "false", f"1380000{i:04d}") for i in range(300)]


@pytest.fixture(scope="module")
def table():
    loaded = load(csv_of(ROWS), "csv", COLUMNS)
    yield loaded
    loaded.close()


def test_the_table_is_loaded_as_described(table) -> None:
    assert table.row_count == 300
    result = table.run(check("SELECT city, COUNT(*), SUM(amount) FROM data GROUP BY city ORDER BY city", ROLES),
                       min_group=1, timeout=10)
    expected = defaultdict(lambda: [0, 0])
    for row in ROWS:
        expected[row[1]][0] += 1
        expected[row[1]][1] += row[3]
    assert result.rows == [[city, n, s] for city, (n, s) in sorted(expected.items())]


def test_groups_with_fewer_entities_than_the_minimum_are_suppressed_and_counted(table) -> None:
    result = table.run(check("SELECT city, COUNT(*) FROM data GROUP BY city", ROLES), min_group=11, timeout=10)
    assert [r[0] for r in result.rows] == ["bj", "gz", "sz"]  # "tiny": 10 rows of 10 users
    assert result.suppressed_groups == 1
    assert all(e >= 11 for e in result.entities)
    everything = table.run(check("SELECT COUNT(*) FROM data WHERE city = 'tiny'", ROLES), min_group=50, timeout=10)
    assert everything.rows == [] and everything.suppressed_groups == 1


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')", "COPY data TO '/tmp/sandbox-out.csv'", "ATTACH '/tmp/sandbox.db'",
    "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", "SET memory_limit = '8GB'",
    "SELECT * FROM read_text('/etc/hostname')", "SELECT * FROM ROWS",
])
def test_the_lock_holds_even_for_sql_the_rules_never_let_through(table, sql: str) -> None:
    cursor = table._db.cursor()
    with pytest.raises(duckdb.Error):
        cursor.execute(sql)


@pytest.mark.parametrize(("content", "message"), [
    (b"uid,City\nu1,sz\n", "the content has 2 columns, the description 6"),
    (b"uid,Town,day,amount,paid,phone\n", "column 2 of the content is 'Town', the description says 'City'"),
    (b"uid,City,day,amount,paid,phone\nu1,sz,2026-02-30,1,true,x\n", "column 'day', row 1: '2026-02-30' is not a date"),
    (b"uid,City,day,amount,paid,phone\nu1,sz,2026-02-03,1,true,x\nu2,sz,2026-02-03,1.5,true,x\n",
     "column 'amount', row 2: '1.5' is not a whole number"),
    (b"uid,City,day,amount,paid,phone\nu1,sz,2026-02-03,1,maybe,x\n", "column 'paid', row 1: 'maybe' is not true or false"),
    (b"\x00\x01not csv at all", "the content"),
])
def test_content_that_does_not_fit_its_description_names_the_first_mismatch(content: bytes, message: str) -> None:
    with pytest.raises(TableMismatch) as mismatch:
        load(content, "csv", COLUMNS)
    assert str(mismatch.value).startswith(message), str(mismatch.value)


def test_parquet_content_loads_too() -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"uid": ["a", "b"], "City": ["sz", "sz"], "day": ["2026-01-01", "2026-01-02"],
                             "amount": [3, 4], "paid": [True, False], "phone": ["x", "y"]}), buffer)
    loaded = load(buffer.getvalue(), "parquet", COLUMNS)
    try:
        result = loaded.run(check("SELECT SUM(amount) FROM data", ROLES), min_group=1, timeout=10)
        assert result.rows == [[7]]
    finally:
        loaded.close()


def test_a_query_past_the_time_limit_is_stopped() -> None:
    """One watchdog serves every query: each past its limit is stopped, each within it is left alone."""
    big = [(f"u{i}", f"c{i % 1000}", "2026-01-01", i, "true", "x") for i in range(200_000)]
    loaded = load(csv_of(big), "csv", COLUMNS)
    slow = check("SELECT city, COUNT(DISTINCT amount) FROM data GROUP BY city", ROLES)
    try:
        for _ in range(2):
            with pytest.raises(QueryFailed) as failed:
                loaded.run(slow, min_group=1, timeout=0.001)
            assert failed.value.reason == "timeout"
            assert len(loaded.run(slow, min_group=1, timeout=30).rows) == 1000
        assert loaded.lookup(Column("uid", "text", "entity"), "u1", ["uid"], 10, timeout=30) == [["u1"]]
    finally:
        loaded.close()


def test_noise_spends_the_epsilon_over_the_query_figures(table) -> None:
    checked = check("SELECT city, COUNT(*), SUM(amount), AVG(amount) FROM data GROUP BY city", ROLES)
    assert figures(checked) == 4
    result = table.run(checked, min_group=1, timeout=10)
    noisy = add_noise(result, checked, 1000.0, {"amount": (0, 16)})  # a huge epsilon: small noise
    for exact, blurred in zip(result.rows, noisy, strict=True):
        assert blurred[0] == exact[0]
        assert abs(blurred[1] - exact[1]) <= 2 and abs(blurred[2] - exact[2]) <= 5
    tiny = add_noise(result, checked, 0.01, {"amount": (0, 16)})
    assert any(t[1] != e[1] for t, e in zip(tiny, result.rows, strict=True))


# Random allowed queries against a plain recount in Python.

DIMENSIONS = {"city": 1, "day": 2, "paid": 4}
CONSTANTS = {"city": ["'sz'", "'gz'", "'bj'", "'tiny'", "'none'"], "day": ["DATE '2026-02-15'", "DATE '2026-01-01'"],
             "paid": ["true", "false"]}


def _value(column: str, row: tuple[Any, ...]) -> Any:
    value = row[DIMENSIONS[column]]
    return {"true": True, "false": False}.get(value, value) if column == "paid" else value


def _constant(text: str) -> Any:
    if text.startswith("DATE"):
        return text[6:-1]
    return {"true": True, "false": False}.get(text, text.strip("'"))


OPS = {"=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(st.sampled_from(sorted(DIMENSIONS)), unique=True, max_size=2),
       aggregates=st.lists(st.sampled_from(["COUNT(*)", "SUM(amount)", "COUNT(DISTINCT amount)"]), min_size=1,
                           max_size=3),
       where=st.none() | st.tuples(st.sampled_from(sorted(DIMENSIONS)), st.sampled_from(sorted(OPS))),
       pick=st.integers(0, 4), min_group=st.integers(1, 30))
def test_random_allowed_queries_answer_what_a_recount_gives(table, groups, aggregates, where, pick, min_group) -> None:
    sql = f"SELECT {', '.join(groups + aggregates)} FROM data"
    keep = list(ROWS)
    if where is not None:
        column, op = where
        constant = CONSTANTS[column][pick % len(CONSTANTS[column])]
        sql += f" WHERE {column} {op} {constant}"
        keep = [r for r in keep if OPS[op](_value(column, r), _constant(constant))]
    if groups:
        sql += f" GROUP BY {', '.join(groups)}"
    buckets: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for row in keep:
        buckets[tuple(_value(g, row) for g in groups)].append(row)
    if not groups and not keep:
        buckets[()] = []
    expected, suppressed = [], 0
    for key, rows in buckets.items():
        if len({r[0] for r in rows}) < min_group:
            suppressed += 1
            continue
        figures_ = {"COUNT(*)": len(rows), "SUM(amount)": sum(r[3] for r in rows) if rows else None,
                    "COUNT(DISTINCT amount)": len({r[3] for r in rows})}
        expected.append([str(k) if g == "day" else k for g, k in zip(groups, key, strict=True)]
                        + [figures_[a] for a in aggregates])
    result = table.run(check(sql, ROLES), min_group=min_group, timeout=10)
    got = [[str(v) if groups[i:i + 1] == ["day"] else v for i, v in enumerate(row)] for row in result.rows]
    assert sorted(map(repr, got)) == sorted(map(repr, expected)), sql
    assert result.suppressed_groups == suppressed, sql


KEYED = [Column("card", "text", "key"), Column("n", "integer", "key"), Column("v", "integer", "measure")]
KEYED_ROWS = [(f"C{i % 37:03d}", i % 23, i) for i in range(600)]


@pytest.fixture(scope="module")
def keyed():
    lines = ["card,n,v"] + [",".join(str(x) for x in row) for row in KEYED_ROWS]
    loaded = load(("\n".join(lines) + "\n").encode(), "csv", KEYED)
    yield loaded
    loaded.close()


def _alone(table, one: Wanted) -> Any:
    try:
        return table.lookup(one.column, one.value, one.shown, one.limit, timeout=10)
    except QueryFailed as exc:
        return exc.reason


_WANTED = st.one_of(
    st.builds(lambda k, lim: Wanted(KEYED[0], f"C{k:03d}", ("card", "v"), lim),
              st.integers(0, 40), st.integers(1, 20)),  # 37 keys and a few that match nothing
    st.builds(lambda k, lim: Wanted(KEYED[1], k, ("v", "n"), lim),
              st.sampled_from(["0", "7", "22", "99", "-1", "x", "1.5", ""]), st.integers(1, 30)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_WANTED, max_size=40))
def test_look_ups_asked_together_answer_as_each_alone(keyed, wanted) -> None:
    """Batched (one query for those by the same key column) or not, each gets the rows it
    would get alone, in the table's order, or fails as it would alone."""
    together = keyed.lookup_many(wanted, timeout=10)
    assert [r.reason if isinstance(r, QueryFailed) else r for r in together] == [_alone(keyed, w) for w in wanted]
    for one, rows in zip(wanted, together, strict=True):
        if one.column.name == "card" and not isinstance(rows, QueryFailed):  # the table's order, cut at the limit
            expected = [[c, v] for c, _, v in KEYED_ROWS if c == one.value][:one.limit]
            assert rows == expected
