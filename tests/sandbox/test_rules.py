"""The sandbox's rules, query by query: each refused query breaks exactly one rule, named."""

import pytest

from market.sandbox.rules import RULE_VERSION, Columns, QueryNotAllowed, check

COLUMNS = Columns({"city": "dimension", "day": "dimension", "amount": "measure", "visits": "measure",
                   "uid": "entity", "phone": "hidden", "card": "key"})

REFUSED = [
    ("SELECT * FROM data", "no-star"),
    ("SELECT uid, COUNT(*) FROM data GROUP BY uid", "protected-column"),
    ("SELECT city, COUNT(*) FROM data GROUP BY city, uid", "protected-column"),
    ("SELECT phone, COUNT(*) FROM data GROUP BY phone", "protected-column"),
    ("SELECT COUNT(DISTINCT uid) FROM data", "protected-column"),
    ("SELECT COUNT(*) FROM data WHERE card = '1'", "protected-column"),
    ("SELECT MIN(amount) FROM data", "aggregates"),
    ("SELECT MAX(amount) FROM data", "aggregates"),
    ("SELECT COUNT(amount) FROM data", "aggregates"),
    ("SELECT SUM(city) FROM data", "aggregate-role"),
    ("SELECT SUM(amount + 1) FROM data", "aggregate-columns-only"),
    ("SELECT COUNT(*) FROM data WHERE amount > 3", "where-role"),
    ("SELECT amount, COUNT(*) FROM data GROUP BY amount", "group-by-role"),
    ("SELECT city, COUNT(*) FROM data", "select-grouped"),
    ("SELECT COUNT(*) FROM (SELECT city FROM data)", "no-subquery"),
    ("SELECT COUNT(*) FROM data WHERE city IN (SELECT city FROM data)", "no-subquery"),
    ("SELECT COUNT(*) FROM data WHERE city = (SELECT MAX(city) FROM data)", "no-subquery"),
    ("WITH d AS (SELECT * FROM data) SELECT COUNT(*) FROM d", "no-cte"),
    ("SELECT COUNT(*) FROM data JOIN data AS b ON data.city = b.city", "no-join"),
    ("SELECT COUNT(*) FROM data, data", "no-join"),
    ("SELECT COUNT(*) FROM data UNION SELECT COUNT(*) FROM data", "select-only"),
    ("SELECT COUNT(*) OVER () FROM data", "no-window"),
    ("SELECT COUNT(*) FROM read_csv('/etc/passwd')", "from-data"),
    ("SELECT COUNT(*) FROM '/etc/passwd'", "from-data"),
    ("SELECT COUNT(*) FROM main.data", "from-data"),
    ("SELECT COUNT(*) FROM other", "from-data"),
    ("COPY data TO '/tmp/out.csv'", "select-only"),
    ("ATTACH '/tmp/other.db' AS o", "select-only"),
    ("INSTALL httpfs", "select-only"),
    ("LOAD httpfs", "select-only"),
    ("PRAGMA database_list", "select-only"),
    ("SET enable_external_access = true", "select-only"),
    ("SELECT COUNT(*) FROM data; SELECT COUNT(*) FROM data", "one-statement"),
    ("SELECT COUNT(*) FROM data; -- a comment\nDROP TABLE data", "one-statement"),
    ("SELECT COUNT(*) FROM data /* ; */; DROP TABLE data", "one-statement"),
    ("SELECT COUNT(*) FROM data HAVING COUNT(*) > 1", "no-having"),
    ("SELECT DISTINCT city FROM data", "no-distinct"),
    ("SELECT COUNT(*) FROM data LIMIT 1 OFFSET 2", "no-offset"),
    ("SELECT COUNT(*) FROM data WHERE NOT city = 'a'", "where-operators"),
    ("SELECT COUNT(*) FROM data WHERE city LIKE 'a%'", "where-operators"),
    ("SELECT COUNT(*) FROM data WHERE city IS NULL", "where-operators"),
    ("SELECT COUNT(*) FROM data WHERE city = day", "where-constants"),
    ("SELECT COUNT(*) FROM data WHERE lower(city) = 'a'", "where-columns-only"),
    ("SELECT COUNT(*) FROM data WHERE day = current_date", "where-constants"),
    ("SELECT city, COUNT(*) FROM data GROUP BY city ORDER BY day", "order-by-outputs"),
    ("SELECT city, COUNT(*) FROM data GROUP BY 1", "group-by-columns-only"),
    ("SELECT COUNT(*) FROM data AS t", "from-data"),
    ("SELECT COUNT(*) FROM data WHERE nosuch = 1", "unknown-column"),
    ("SELECT version()", "from-data"),
    ("SELEC COUNT(*) FROM data", "syntax"),
    ("DROP TABLE data", "select-only"),
]


@pytest.mark.parametrize(("sql", "rule"), REFUSED)
def test_each_refused_query_names_the_rule_it_breaks(sql: str, rule: str) -> None:
    with pytest.raises(QueryNotAllowed) as refused:
        check(sql, COLUMNS)
    assert refused.value.rule == rule, refused.value.detail
    assert refused.value.detail


ALLOWED = [
    "SELECT COUNT(*) FROM data",
    "select count(*) from DATA",
    "SELECT city, COUNT(*), COUNT(DISTINCT day), SUM(amount) AS total, AVG(visits) FROM data GROUP BY city",
    "SELECT city FROM data GROUP BY city",
    "SELECT city, day, COUNT(*) FROM data WHERE day BETWEEN DATE '2026-01-01' AND DATE '2026-03-31' "
    "AND (city IN ('a', 'b') OR city <> 'c') GROUP BY city, day ORDER BY 3 DESC",
    "SELECT city, SUM(amount) AS s FROM data WHERE city >= 'a' AND city < 'z' GROUP BY city ORDER BY s DESC LIMIT 5",
    "SELECT data.city, COUNT(*) FROM data WHERE -1 < day GROUP BY data.city",
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed_queries_pass(sql: str) -> None:
    if "ORDER BY 3" in sql:  # positional ORDER BY is refused: outputs are named
        with pytest.raises(QueryNotAllowed) as refused:
            check(sql, COLUMNS)
        assert refused.value.rule == "order-by-outputs"
        return
    checked = check(sql, COLUMNS)
    assert checked.names and '"__entities"' in checked.sql and RULE_VERSION


def test_what_runs_is_rebuilt_from_the_checked_parts_only() -> None:
    checked = check("SELECT City AS town, SUM(amount) AS s FROM data /* hi */ WHERE city = 'a' "
                    "GROUP BY city ORDER BY s DESC LIMIT 3", COLUMNS)
    assert checked.names == ["town", "s"]
    assert checked.order == [(1, True)] and checked.limit == 3
    assert checked.aggregates == [None, "sum"] and checked.measures == [None, "amount"]
    assert "hi" not in checked.sql and "LIMIT" not in checked.sql
    assert checked.sql == ('SELECT "city" AS "c0", SUM("amount") AS "c1", COUNT(DISTINCT "uid") AS "__entities", '
                           'COUNT(*) AS "__rows" FROM "data" WHERE "city" = \'a\' GROUP BY "city"')


def test_without_an_entity_column_each_row_is_one() -> None:
    checked = check("SELECT COUNT(*) FROM data", Columns({"city": "dimension"}))
    assert 'COUNT(*) AS "__entities"' in checked.sql


def test_a_very_long_query_is_refused_before_parsing() -> None:
    with pytest.raises(QueryNotAllowed) as refused:
        check("SELECT COUNT(*) FROM data WHERE " + " OR ".join(["city = 'a'"] * 2000), COLUMNS)
    assert refused.value.rule == "too-long"
