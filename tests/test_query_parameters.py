"""Missing and invalid query parameters are reported all at once, by the names a client
wrote in the URL: one 422 problem whose ``errors`` list each of them, as for a body."""

from typing import Any

from tests.conftest import Party, assert_problem


def fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


async def test_two_missing_and_a_bad_parameter_in_one_answer(client, operator: Party) -> None:
    r = await client.get("/v1/ledger/proofs/inclusion")
    problem = assert_problem(r, 422, "validation-error")
    assert fields(problem) == ["index", "size"]
    assert all("missing" in e["message"] for e in problem["errors"])
    assert "index" in problem["detail"] and "size" in problem["detail"]

    problem = assert_problem(await client.get("/v1/ledger/proofs/inclusion", params={"size": "0"}), 422)
    assert fields(problem) == ["index", "size"]
    assert "missing" in problem["errors"][0]["message"] and "missing" not in problem["errors"][1]["message"]
    problem = assert_problem(await client.get("/v1/ledger/proofs/inclusion", params={"index": "x", "size": "-1"}),
                             422)
    assert fields(problem) == ["index", "size"]
    assert (await client.get("/v1/ledger/proofs/consistency", params={"first": 0, "second": 0})).status_code == 200

    # Two missing required parameters and a bad one, on a route with a dependency and a path.
    r = await client.get("/v1/listings/lst_nonesuch/order-document", params={"purpose": "mind_reading"},
                         headers=operator.auth)
    problem = assert_problem(r, 422, "validation-error")
    assert sorted(fields(problem)) == ["payment_method", "plan_id", "purpose"]
    assert {e["field"]: e["message"] for e in problem["errors"]}["purpose"].startswith("Invalid enum value")


async def test_parameters_are_named_as_in_the_url(client, regulator: Party) -> None:
    params = {"from": "2026-13-01", "to": "yesterday", "currency": "yuan"}
    problem = assert_problem(await client.get("/v1/oversight/overview", params=params, headers=regulator.auth), 422,
                             "validation-error")
    assert fields(problem) == ["from", "to", "currency"]  # not the handler's names (start, end)
    r = await client.get("/v1/oversight/overview", params={"from": "2026-03-01", "to": "2026-04-01"},
                         headers=regulator.auth)
    assert r.status_code == 200, r.text


async def test_every_bad_filter_of_a_list_at_once(client, operator: Party) -> None:
    params = {"side": "seller", "payment_method": "cash", "status": "paid", "limit": "0"}
    problem = assert_problem(await client.get("/v1/orders", params=params, headers=operator.auth), 422,
                             "validation-error")
    assert sorted(fields(problem)) == sorted(params)


async def test_a_body_error_is_still_named_beside_nothing_else(client, operator: Party) -> None:
    r = await client.post("/v1/orders/ord_nonesuch/payment", json={"reference": "", "amount": 5},
                          headers=operator.auth)
    problem = assert_problem(r, 422, "validation-error")
    assert problem["errors"] and all(e["field"] != "order_id" for e in problem["errors"])
