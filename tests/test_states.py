"""Every transition table: each state reachable, terminal states without exits, every
action used by a service, entry types from the closed list; and ``Machine.move`` itself."""

import ast
from pathlib import Path

import pytest

from market.accounts.states import MACHINES as ACCOUNT_MACHINES
from market.core import audit
from market.core.errors import Conflict, Forbidden, InvalidTransition
from market.core.statemachine import Machine, Transition
from market.dsp.states import MACHINES as DSP_MACHINES
from market.listings.states import MACHINES as LISTING_MACHINES
from market.registry.states import MACHINES as REGISTRY_MACHINES
from market.trading.states import MACHINES as TRADING_MACHINES
from market.usage.states import MACHINES as USAGE_MACHINES

MACHINES = {m.kind: m for m in (*ACCOUNT_MACHINES, *REGISTRY_MACHINES, *LISTING_MACHINES, *TRADING_MACHINES,
                                 *USAGE_MACHINES, *DSP_MACHINES)}
PACKAGE = Path(__file__).resolve().parent.parent / "market"

TERMINAL = {
    "account": set(),
    "asset": {"rejected", "revoked", "cancelled"},
    "objection": {"upheld", "dismissed"},
    "transfer": {"completed", "withdrawn", "void"},
    "listing": {"delisted"},
    "order": {"expired", "rejected", "cancelled", "refunded"},
    "dispute": {"refunded", "rejected"},
    "usage_period": {"paid"},
    "sandbox_query": {"answered", "failed"},
    "dsp_negotiation": {"FINALIZED", "TERMINATED"},
    "dsp_transfer": {"COMPLETED", "TERMINATED"},
}


def actions_used_in_code() -> dict[str, set[str]]:
    """``MACHINE.move(session, row, "action", ...)`` calls in the package, by machine name,
    and the actions of conditional moves (``"a" if x else "b"``)."""
    used: dict[str, set[str]] = {}

    def constants(node: ast.AST) -> list[str]:
        return [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]

    for path in PACKAGE.rglob("*.py"):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            # ``action = "a" if x else "b"`` in the function, then ``MACHINE.move(…, action, …)``.
            assigned: dict[str, list[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    assigned.setdefault(node.targets[0].id, []).extend(constants(node.value))
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("move", "check") and isinstance(node.func.value, ast.Name)):
                    continue
                if len(node.args) < 2:
                    continue
                action = node.args[2] if node.func.attr == "move" else node.args[1]
                names = constants(action)
                if not names and isinstance(action, ast.Name):
                    names = assigned.get(action.id) or [f"<{action.id}>"]
                used.setdefault(node.func.value.id, set()).update(names)
    return used


@pytest.mark.parametrize("kind", sorted(MACHINES))
def test_every_state_is_reachable(kind: str) -> None:
    machine = MACHINES[kind]
    assert machine.reachable() == {s.value for s in machine.states}


@pytest.mark.parametrize("kind", sorted(MACHINES))
def test_terminal_states_have_no_exits(kind: str) -> None:
    machine = MACHINES[kind]
    assert machine.terminal() == TERMINAL[kind]
    for state in TERMINAL[kind]:
        assert machine.exits(state) == set()


@pytest.mark.parametrize("kind", sorted(MACHINES))
def test_every_action_is_used_by_a_service(kind: str) -> None:
    machine = MACHINES[kind]
    used = actions_used_in_code().get(kind.upper(), set())
    # Moves whose action is computed from a variable name the actions of their table.
    computed = {"<action>": {"submit", "submit_change"}}  # claims._submit_action
    for name in list(used):
        used |= computed.get(name, set())
    assert set(machine.transitions) <= used, sorted(set(machine.transitions) - used)


@pytest.mark.parametrize("kind", sorted(MACHINES))
def test_entries_are_from_the_closed_list(kind: str) -> None:
    machine = MACHINES[kind]
    for t in machine.transitions.values():
        assert t.entry is None or t.entry in audit.EVENT_TYPES
    assert machine.created is None or machine.created in audit.EVENT_TYPES


def test_no_hand_written_status_updates_remain() -> None:
    """Statuses change only through ``Machine.move``: no ``.values(status=...)`` and no
    ``WHERE status`` guard outside the state machine."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "statemachine.py":
            continue
        text = path.read_text()
        if ".values(status=" in text or "status == asset.status" in text or "allowed = {" in text:
            offenders.append(path.name)
    assert offenders == []


def test_frozen_is_checked_in_one_place() -> None:
    """Only the state machine refuses a move because something is frozen (the problem pages
    only explain the kinds it raises)."""
    refusers = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "-frozen" in p.read_text()]
    assert sorted(refusers) == ["core/statemachine.py", "web/problem_kinds.py"]


class Row:
    def __init__(self, status: str, frozen: bool = False) -> None:
        self.id, self.status, self.frozen, self.version = "row_1", status, frozen, 0


def test_check_refuses_a_move_from_the_wrong_state_or_while_frozen() -> None:
    asset = MACHINES["asset"]
    with pytest.raises(InvalidTransition, match="asset row_1 is draft; cancel is not allowed"):
        asset.check(Row("draft"), "cancel")
    with pytest.raises(Forbidden, match="frozen") as refused:
        asset.check(Row("registered", frozen=True), "cancel")
    assert refused.value.kind == "asset-frozen"
    assert asset.check(Row("registered", frozen=True), "revoke").target == "revoked"  # a regulator still may


def test_a_table_naming_an_unknown_state_or_entry_is_refused() -> None:
    states = MACHINES["objection"].states
    with pytest.raises(ValueError, match="unknown states"):
        Machine("x", object, states, "open", {"a": Transition.of({"open"}, "nowhere", None)}, subject=str)
    with pytest.raises(ValueError, match="unknown entry type"):
        Machine("x", object, states, "open", {"a": Transition.of({"open"}, "upheld", "x.typo")}, subject=str)


async def test_a_move_of_a_row_changed_since_it_was_read_loses(client, parties, operator, settings) -> None:
    """Two readers of one row: the first move wins, the second (stale version) is 409
    and changes nothing."""
    from market.accounts.models import Account
    from market.accounts.states import ACCOUNT
    from market.core.context import Ctx
    from market.core.types import utcnow

    applicant = await parties.sign_up(["buyer"])
    state = client.app.state.services

    async def run() -> None:
        ctx = Ctx(None, utcnow(), state)
        async with state.sessionmaker() as first, state.sessionmaker() as second:
            rows = []
            for session in (first, second):  # each reads the row, then lets go of it
                rows.append(await session.get(Account, applicant.id))
                session.expunge(rows[-1])
                await session.commit()
            a, b = rows
            assert a.version == b.version
            await ACCOUNT.move(first, a, "approve", ctx, {"decision": "approve"}, verified_at=ctx.now)
            await first.commit()
            assert a.version == b.version + 1 and a.status == "verified"
            with pytest.raises(Conflict, match="changed since it was read") as lost:
                await ACCOUNT.move(second, b, "reject", ctx, {"decision": "reject"})
            assert lost.value.kind == "concurrent-update"
            await second.rollback()

    client.blocking_portal.call(run)
    r = await client.get(f"/v1/accounts/{applicant.id}", headers=operator.auth)
    assert r.json()["status"] == "verified"


def test_new_builds_the_row_the_model_s_constructor_would() -> None:
    """``Machine.new``: the values given, every other column's default (factories called
    per row), the initial state and version 0; a missing required column or an unknown
    one is refused."""
    from datetime import UTC, datetime

    from sqlalchemy.orm import configure_mappers

    from market.trading.models import Order
    from market.trading.states import ORDER

    configure_mappers()
    now = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    given = {"id": "ord_1", "listing_id": "lst_1", "asset_id": "ast_1", "buyer_id": "acct_b",
             "provider_id": "acct_p", "terms_version": 2, "terms_sha256": "a" * 64, "plan_id": "p1",
             "plan": "{}", "licence": "{}", "purpose": "research", "payment_method": "free", "currency": "CNY",
             "created_at": now}
    row, made = ORDER.new(**given), Order(**given, status=ORDER.initial)
    columns = [c.key for c in Order.__table__.columns]
    assert {c: getattr(row, c) for c in columns if c != "updated_at"} == \
        {c: getattr(made, c) for c in columns if c != "updated_at"}
    assert row.status == ORDER.initial and row.version == 0 and row.updated_at is not None
    with pytest.raises(TypeError, match="buyer_id"):
        ORDER.new(**{k: v for k, v in given.items() if k != "buyer_id"})
    with pytest.raises(TypeError, match="colour"):
        ORDER.new(**given, colour="red")
