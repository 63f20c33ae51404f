"""The registry of problem kinds (``market.web.problem_kinds``) holds every kind the
code raises, and nothing else: read from the source, so that a new ``kind="…"`` fails
here until its page (title, explanation, what to do) is written."""

import ast
import functools
from pathlib import Path
from typing import Any

import pytest

import market.models  # noqa: F401 - every domain imported: every error class defined
import market.web.app
from market.core.errors import LEDGER_KINDS, DomainError
from market.core.statemachine import Machine
from market.web.problem_kinds import PROBLEM_KINDS

ROOT = Path(__file__).resolve().parents[1]

# A kind raised with a status other than its entry's, on purpose (said on its page).
OTHER_STATUSES = {("bad-signature", 400)}  # the Stripe webhook's signature: 400, as Stripe expects


def error_classes() -> dict[str, type[DomainError]]:
    found: dict[str, type[DomainError]] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def _callee(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def raised_kinds(sources: dict[str, str]) -> tuple[dict[str, set[int]], list[str]]:
    """Every problem kind the source gives, with the statuses it comes with, and the
    places where a kind is computed (not a literal), which the caller must account for.

    Kinds come from: the ``kind`` of every error class; ``kind="…"`` given to an error
    class; functions that pass their own ``kind`` parameter on to an error class
    (``decode_b64``, ``check_fresh``), with the literal they are called with or their
    default; ``problem(status, "kind", …)``."""
    classes = error_classes()
    kinds: dict[str, set[int]] = {}
    for cls in classes.values():
        kinds.setdefault(cls.kind, set()).add(cls.status)
    trees = {name: ast.parse(text) for name, text in sources.items()}
    forwarders: dict[str, tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]] = {}
    for tree in trees.values():
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for call in ast.walk(fn):
                    if isinstance(call, ast.Call) and _callee(call) in classes and any(
                            kw.arg == "kind" and isinstance(kw.value, ast.Name) and kw.value.id == "kind"
                            for kw in call.keywords):
                        forwarders[fn.name] = (fn, classes[_callee(call) or ""].status)
    computed: list[str] = []

    def add(value: ast.expr, status: int, where: str) -> None:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            kinds.setdefault(value.value, set()).add(status)
        else:
            computed.append(where)

    for name, tree in trees.items():
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            callee, where = _callee(call), f"{name}:{call.lineno}"
            if callee in classes:
                for kw in call.keywords:
                    if kw.arg == "kind" and not (isinstance(kw.value, ast.Name) and kw.value.id == "kind"):
                        add(kw.value, classes[callee].status, where)
            elif callee in forwarders:
                fn, status = forwarders[callee]
                positional = [a.arg for a in fn.args.args]
                values = [kw.value for kw in call.keywords if kw.arg == "kind"]
                if "kind" in positional and len(call.args) > positional.index("kind"):
                    values.append(call.args[positional.index("kind")])
                for value in values:
                    add(value, status, where)
            elif callee == "problem" and len(call.args) >= 2 and isinstance(call.args[0], ast.Constant):
                add(call.args[1], int(call.args[0].value), where)
    for fn, status in forwarders.values():
        defaults = list(zip(fn.args.args[len(fn.args.args) - len(fn.args.defaults):], fn.args.defaults, strict=True))
        defaults += [(a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is not None]
        for arg, default in defaults:
            if arg.arg == "kind":
                add(default, status, f"default of {fn.name}")
    return kinds, computed


@functools.cache
def market_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted((ROOT / "market").rglob("*.py"))}


def machines() -> list[Machine]:
    import gc

    return [m for m in gc.get_objects() if isinstance(m, Machine)]


@functools.cache
def all_kinds() -> dict[str, set[int]]:
    kinds, computed = raised_kinds(dict(market_sources()))
    # The one computed kind: a transition a regulator's freeze blocks, "<machine>-frozen" (403).
    assert [c.rsplit(":", 1)[0] for c in computed] == ["market/core/statemachine.py"], computed
    for machine in machines():
        if any(t.frozen_blocks for t in machine.transitions.values()):
            kinds.setdefault(f"{machine.kind}-frozen", set()).add(403)
    for status, kind in market.web.app.HTTP_KINDS.items():
        kinds.setdefault(kind, set()).add(status)
    kinds.setdefault("http-error", set())
    for kind in LEDGER_KINDS:
        kinds.setdefault(kind, set())
    return kinds


def test_every_kind_the_code_raises_is_in_the_registry() -> None:
    kinds = all_kinds()
    missing = sorted(set(kinds) - set(PROBLEM_KINDS))
    assert not missing, f"problem kinds without an entry in market/web/problem_kinds.py: {missing}"


def test_the_registry_holds_no_kind_the_code_never_raises() -> None:
    stale = sorted(set(PROBLEM_KINDS) - set(all_kinds()))
    assert not stale, f"entries for kinds nothing raises any more: {stale}"


def test_each_kind_comes_with_the_status_its_page_says() -> None:
    wrong = sorted((kind, status) for kind, statuses in all_kinds().items() for status in statuses
                   if status != PROBLEM_KINDS[kind].status and (kind, status) not in OTHER_STATUSES)
    assert not wrong, wrong


@pytest.mark.parametrize(("source", "kind"), [
    ('raise Unprocessable("x", kind="brand-new-kind")', "brand-new-kind"),
    ('raise Refused(Forbidden("x", kind="refused-kind"), None)', "refused-kind"),
    ('signing.check_fresh(doc, now, kind="fresh-kind")', "fresh-kind"),
    ('decode_b64(value, "signature", "decoded-kind")', "decoded-kind"),
    ('body = problem(418, "teapot", "I am a teapot", "no coffee")', "teapot"),
])
def test_the_scan_finds_kinds_however_they_are_raised(source: str, kind: str) -> None:
    """The scan sees the forms the code uses (so the test above would fail on a new kind)."""
    sources = {"market/core/signing.py": market_sources()["market/core/signing.py"]}  # the forwarders
    sources["market/new_module.py"] = f"def f(doc: Any, now: Any, value: Any) -> None:\n    {source}\n"
    kinds, _ = raised_kinds(sources)
    assert kind in kinds and kind not in PROBLEM_KINDS


def test_a_computed_kind_is_reported() -> None:
    sources: dict[str, Any] = {"market/x.py": 'raise Conflict("x", kind=f"{what}-gone")\n'}
    _, computed = raised_kinds(sources)
    assert computed == ["market/x.py:1"]
