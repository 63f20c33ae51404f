"""The drawing of the package layout in docs/architecture.md is the tree as it is: every
package and module of ``market/`` and ``ledger/`` is drawn where it lives, and nothing
drawn is missing."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\b([a-z_][a-z0-9_]*(?:\.py|/))(?=[\s,;(]|$)")


def _drawing() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```", 2)[1]
    return block.splitlines()


def _drawn() -> set[str]:
    """Paths drawn: a line's names (before the two-space gap that starts its comment)
    live in the package of the nearest less-indented line naming a package."""
    found: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indent, path of a package)
    for line in _drawing():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        names = NAME.findall(head)
        if not names:
            continue  # a comment's continuation
        while parents and parents[-1][0] >= indent:
            parents.pop()
        base = parents[-1][1] if parents else ""
        for name in names:
            path = base + name
            found.add(path)
            if name.endswith("/") and len(names) == 1:
                parents.append((indent, path))
    return found


def _tree() -> set[str]:
    found: set[str] = set()
    for top in ("market", "ledger"):
        found.add(f"{top}/")
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if "__pycache__" in rel or path.name == "__init__.py":
                continue
            if path.is_dir() and (path / "__init__.py").exists():
                found.add(rel + "/")
            elif path.suffix == ".py":
                found.add(rel)
    return found


def test_the_drawing_names_every_module_where_it_lives() -> None:
    drawn = {p for p in _drawn() if p.startswith(("market/", "ledger/"))}
    tree = _tree()
    assert sorted(tree - drawn) == [], "in the tree, not in the drawing"
    assert sorted(drawn - tree) == [], "in the drawing, not in the tree"
