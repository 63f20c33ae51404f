"""Sandbox orders over HTTP: the table description, allowed and refused queries, suppression, the
budget, receipts, who sees what, and that the content is never handed over."""

import asyncio
import hashlib
import json
from collections import defaultdict
from typing import Any

import pytest

from ledger.bundle import verify_bundle
from market.core import signing
from tests.conftest import Parties, Party, assert_problem
from tests.registry_support import draft, provider, submit, upload
from tests.trading.support import buyer
from tests.usage.support import COLUMNS, DISTRICTS, csv_of, query, sandbox_order, table_asset, trips


@pytest.fixture(scope="module")
async def bought(client: Any, parties: Parties, operator: Party) -> dict[str, Any]:
    return await sandbox_order(client, parties, operator)


def recount(rows: list[tuple[Any, ...]], min_group: int) -> tuple[dict[str, list[int]], int]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        groups[row[1]].append(row)
    shown = {d: [len(g), sum(r[3] for r in g)] for d, g in groups.items() if len({r[0] for r in g}) >= min_group}
    return shown, len(groups) - len(shown)


async def test_an_allowed_query_answers_what_a_recount_gives_and_suppresses_small_groups(client, bought) -> None:
    r = await query(client, bought, "SELECT district, COUNT(*) AS n, SUM(fare) AS total FROM data "
                                     "GROUP BY district ORDER BY district")
    assert r.status_code == 201, r.text
    answer = r.json()
    shown, suppressed = recount(bought["rows"], 5)
    assert answer["columns"] == ["district", "n", "total"]
    assert {row[0]: row[1:] for row in answer["rows"]} == shown
    assert "宝安" not in shown and answer["suppressed_groups"] == suppressed == 1
    assert answer["id"].startswith("qry_") and answer["epsilon_spent"] == 0 and answer["epsilon_left"] is None
    assert answer["rule_version"] == "sandbox-rules/1"


RULE_BREAKERS = [
    ("SELECT * FROM data", "no-star"),
    ("SELECT rider, COUNT(*) FROM data GROUP BY rider", "protected-column"),
    ("SELECT phone FROM data GROUP BY phone", "protected-column"),
    ("SELECT district, COUNT(*) FROM data GROUP BY district, card", "protected-column"),
    ("SELECT MIN(fare) FROM data", "aggregates"),
    ("SELECT MAX(fare) FROM data", "aggregates"),
    ("SELECT COUNT(*) FROM data WHERE fare > 3", "where-role"),
    ("SELECT COUNT(*) FROM (SELECT district FROM data)", "no-subquery"),
    ("WITH d AS (SELECT * FROM data) SELECT COUNT(*) FROM d", "no-cte"),
    ("SELECT COUNT(*) FROM data JOIN data AS b ON data.district = b.district", "no-join"),
    ("SELECT COUNT(*) FROM data UNION SELECT COUNT(*) FROM data", "select-only"),
    ("SELECT COUNT(*) OVER () FROM data", "no-window"),
    ("SELECT COUNT(*) FROM read_csv('/etc/passwd')", "from-data"),
    ("SELECT COUNT(*) FROM '/etc/passwd'", "from-data"),
    ("COPY data TO '/tmp/leak.csv'", "select-only"),
    ("ATTACH '/tmp/other.db' AS o", "select-only"),
    ("INSTALL httpfs", "select-only"),
    ("PRAGMA database_list", "select-only"),
    ("SET enable_external_access = true", "select-only"),
    ("SELECT COUNT(*) FROM data; SELECT COUNT(*) FROM data", "one-statement"),
    ("SELECT COUNT(*) FROM data; -- nothing here\nDROP TABLE data", "one-statement"),
    ("SELECT COUNT(*) FROM data /* ; */; DELETE FROM data", "one-statement"),
]


@pytest.mark.parametrize(("sql", "rule"), RULE_BREAKERS)
async def test_each_rule_refuses_a_query_that_breaks_only_it(client, bought, sql: str, rule: str) -> None:
    before = await client.get(f"/v1/orders/{bought['order']['id']}/queries", headers=bought["buyer"].auth)
    body = assert_problem(await query(client, bought, sql), 422, "query-not-allowed")
    assert body["rule"] == rule, body
    after = await client.get(f"/v1/orders/{bought['order']['id']}/queries", headers=bought["buyer"].auth)
    assert after.json()["items"] == before.json()["items"]  # a refused query leaves nothing


async def test_bad_bodies_are_clear_errors(client, bought) -> None:
    path = f"/v1/orders/{bought['order']['id']}/queries"
    before = (await client.get(path, headers=bought["buyer"].auth)).json()["items"]
    for body, kind in (({}, "validation-error"), ({"sql": ""}, "validation-error"), ({"sql": 5}, "validation-error"),
                       ({"sql": "SELECT COUNT(*) FROM data", "extra": 1}, "validation-error"),
                       ({"sql": "SELECT COUNT(*) FROM data", "epsilon": -1}, "validation-error"),
                       ({"sql": "SELECT COUNT(*) FROM data", "epsilon": 0.5}, "no-budget")):
        problem = assert_problem(await client.post(path, json=body, headers=bought["buyer"].auth), 422, kind)
        assert problem["errors"], problem
    assert (await client.get(path, headers=bought["buyer"].auth)).json()["items"] == before


async def test_only_the_buyer_queries_and_reads_results(client, parties: Parties, bought) -> None:
    order_id = bought["order"]["id"]
    r = await query(client, bought, "SELECT COUNT(*) FROM data")
    assert r.status_code == 201
    qid = r.json()["id"]
    stranger = await buyer(client, parties)
    for who in (stranger, bought["holder"]):
        assert (await client.post(f"/v1/orders/{order_id}/queries", json={"sql": "SELECT COUNT(*) FROM data"},
                                  headers=who.auth)).status_code in (403, 404)
        assert_problem(await client.get(f"/v1/orders/{order_id}/queries/{qid}", headers=who.auth), 404)
    assert_problem(await client.get(f"/v1/orders/{order_id}/queries", headers=stranger.auth), 404)
    assert_problem(await client.get(f"/v1/orders/{order_id}/queries/qry_nosuch", headers=bought["buyer"].auth), 404)
    assert (await client.post(f"/v1/orders/{order_id}/queries", json={"sql": "SELECT COUNT(*) FROM data"})
            ).status_code == 401


async def test_the_holder_and_regulators_see_the_sql_and_sizes_not_results(client, regulator, operator,
                                                                            bought) -> None:
    r = await query(client, bought, "SELECT district, COUNT(*) FROM data GROUP BY district")
    qid = r.json()["id"]
    for who in (bought["holder"], regulator):
        listed = await client.get(f"/v1/orders/{bought['order']['id']}/queries", headers=who.auth)
        assert listed.status_code == 200, listed.text
        item = next(q for q in listed.json()["items"] if q["id"] == qid)
        assert item["sql"].startswith("SELECT district") and item["row_count"] == 3
        assert "rows" not in item and "columns" not in item and "receipt" not in item
    assert_problem(await client.get(f"/v1/orders/{bought['order']['id']}/queries", headers=operator.auth), 403)


async def test_the_content_is_never_downloaded(client, bought) -> None:
    order_id = bought["order"]["id"]
    assert_problem(await client.get(f"/v1/orders/{order_id}/content", headers=bought["buyer"].auth), 409,
                   "wrong-delivery")
    assert_problem(await client.get(f"/v1/orders/{order_id}/content/proof", params={"chunk": 0},
                                    headers=bought["buyer"].auth), 409, "wrong-delivery")


async def test_the_receipt_verifies_and_the_log_shows_no_sql_and_no_result(client, bought) -> None:
    sql = "SELECT district, SUM(fare) FROM data GROUP BY district"
    answer = (await query(client, bought, sql)).json()
    assert answer["receipt"]["document"]["query"] == answer["id"]
    vkey = (await client.get("/v1/ledger/key")).json()["vkey"]
    for _ in range(100):  # integrated within a second
        again = (await client.get(f"/v1/orders/{bought['order']['id']}/queries/{answer['id']}",
                                  headers=bought["buyer"].auth)).json()
        if again["receipt"]["ledger"]["index"] is not None:
            break
        await asyncio.sleep(0.05)
    receipt = again["receipt"]
    assert verify_bundle(receipt, vkey).status == "valid"
    assert again["rows"] == answer["rows"]
    document = receipt["document"]
    assert document["query_sha256"] == hashlib.sha256(sql.encode()).hexdigest()
    assert document["rule_version"] == "sandbox-rules/1" and document["table_sha256"] == bought["table"]["sha256"]
    expected = {"columns": answer["columns"], "rows": answer["rows"], "suppressed_groups": answer["suppressed_groups"]}
    assert document["result_sha256"] == hashlib.sha256(signing.canonical(expected)).hexdigest()
    entry = (await client.get(f"/v1/ledger/entries/{receipt['ledger']['index']}")).json()["entry"]
    assert entry["type"] == "usage.query" and entry["subject"] == f"order:{bought['order']['id']}"
    assert set(entry["data"]) == {"document_sha256"}
    public = json.dumps(entry, ensure_ascii=False)
    assert "district" not in public and "SELECT" not in public and "福田" not in public
    tampered = {**receipt, "document": {**document, "epsilon": 5}}
    assert verify_bundle(tampered, vkey).status == "invalid"


async def test_a_new_description_must_fit_the_content(client, parties: Parties, operator: Party) -> None:
    holder, table, _ = await table_asset(client, parties, operator)
    asset_id = table["asset_id"]
    wrong = [dict(c) for c in COLUMNS]
    wrong[2]["type"] = "integer"
    for body, kind in (({"format": "csv", "columns": wrong}, "table-mismatch"),
                       ({"format": "csv", "columns": COLUMNS[:3]}, "table-mismatch"),
                       ({"format": "parquet", "columns": COLUMNS}, "table-mismatch")):
        body_ = assert_problem(await client.put(f"/v1/assets/{asset_id}/table", json=body, headers=holder.auth), 422,
                               kind)
        assert body_["detail"]
    for body in ({"format": "csv", "columns": [{**COLUMNS[0], "role": "secret"}]},
                 {"format": "csv", "columns": COLUMNS + [COLUMNS[0]]},
                 {"format": "csv", "columns": [{**COLUMNS[1], "bounds": [0, 1]}]},
                 {"format": "csv", "columns": COLUMNS, "epsilon_budget": 1.0,
                  "columns_": None},
                 {"format": "xlsx", "columns": COLUMNS}, {"format": "csv", "columns": []}):
        r = await client.put(f"/v1/assets/{asset_id}/table", json=body, headers=holder.auth)
        assert r.status_code in (400, 422), r.text
    shown = (await client.get(f"/v1/assets/{asset_id}/table")).json()
    assert shown["sha256"] == table["sha256"] and shown["row_count"] == 400  # nothing changed
    stranger = await provider(client, parties)
    assert (await client.put(f"/v1/assets/{asset_id}/table", json={"format": "csv", "columns": COLUMNS},
                             headers=stranger.auth)).status_code in (403, 404)
    r = await client.put(f"/v1/assets/{asset_id}/table", json={"format": "csv", "columns": COLUMNS, "min_group": 3},
                         headers=holder.auth)
    assert r.status_code == 200 and r.json()["min_group"] == 3


async def test_a_draft_cannot_be_described_and_a_private_asset_table_is_not_shown(client, parties, operator) -> None:
    holder = await provider(client, parties)
    asset = await draft(client, holder, format="csv")
    await upload(client, holder, asset["id"], csv_of(trips(50)))
    await submit(client, holder, asset["id"], "holding,use,operation")
    assert_problem(await client.put(f"/v1/assets/{asset['id']}/table", json={"format": "csv", "columns": COLUMNS},
                                    headers=holder.auth), 409)
    assert_problem(await client.get(f"/v1/assets/{asset['id']}/table"), 404)


async def test_the_budget_is_spent_and_ends(client, parties: Parties, operator: Party) -> None:
    bought = await sandbox_order(client, parties, operator, epsilon_budget=0.25)
    sql = "SELECT district, COUNT(*), SUM(fare), AVG(fare) FROM data GROUP BY district"
    first = await query(client, bought, sql, epsilon=0.1)
    assert first.status_code == 201, first.text
    assert first.json()["epsilon_spent"] == 0.1 and abs(first.json()["epsilon_left"] - 0.15) < 1e-9
    assert (await query(client, bought, sql, epsilon=0.1)).status_code == 201
    body = assert_problem(await query(client, bought, sql, epsilon=0.1), 409, "budget-exhausted")
    assert abs(body["epsilon_left"] - 0.05) < 1e-9
    assert (await query(client, bought, sql, epsilon=0.05)).status_code == 201
    assert_problem(await query(client, bought, "SELECT COUNT(*) FROM data", epsilon=0.01), 409, "budget-exhausted")
    listed = (await client.get(f"/v1/orders/{bought['order']['id']}/queries", headers=bought["buyer"].auth)).json()
    assert abs(sum(q["epsilon_spent"] for q in listed["items"]) - 0.25) < 1e-9


async def test_under_a_budget_answers_are_noisy_but_near(client, parties: Parties, operator: Party) -> None:
    bought = await sandbox_order(client, parties, operator, epsilon_budget=50.0)
    r = await query(client, bought, "SELECT district, COUNT(*) FROM data GROUP BY district ORDER BY district",
                    epsilon=10.0)
    assert r.status_code == 201, r.text
    shown, _ = recount(bought["rows"], 5)
    for district, n in r.json()["rows"]:
        assert abs(n - shown[district][0]) <= 5
    assert set(DISTRICTS) - {d for d, _ in r.json()["rows"]} == {"宝安"}
