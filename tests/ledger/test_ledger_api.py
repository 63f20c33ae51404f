"""The package's public API is explicit and importable."""

from __future__ import annotations

import ast
from pathlib import Path

import ledger

EXPECTED = {
    "BadSignatureError", "InconsistentError", "LedgerError", "MalformedError", "ProofError",
    "RootMismatchError", "UnknownKeyError", "VerificationError",
    "EMPTY_ROOT", "HASH_SIZE", "MerkleBuilder", "leaf_hash", "node_hash", "verify_consistency",
    "verify_inclusion",
    "Checkpoint", "CosignatureSigner", "Note", "Signature", "Signer", "Verifier", "key_id", "make_vkey",
    "open_checkpoint", "open_note", "parse_checkpoint", "sign_checkpoint",
    "ENTRY_VERSION", "canonical", "parse_entry", "sign_entry", "verify_entry",
    "BundleReport", "Report", "verify_bundle", "verify_log",
}


def test_all_is_explicit_and_complete():
    assert set(ledger.__all__) == EXPECTED
    assert len(ledger.__all__) == len(set(ledger.__all__))
    for name in ledger.__all__:
        assert getattr(ledger, name) is not None


def test_star_import_exports_exactly_all():
    ns: dict = {}
    exec("from ledger import *", ns)
    assert {k for k in ns if not k.startswith("__")} == EXPECTED


SPEC_MODULES = {
    "merkle.py": "RFC 9162",
    "tiles.py": "C2SP tlog-tiles",
    "note.py": "C2SP signed-note",
    "entry.py": "RFC 8785",
    "verify.py": "RFC 9162",
    "sources.py": "tlog-tiles",
    "witness.py": "C2SP tlog-cosignature",
    "errors.py": "LedgerError",
}


def test_modules_cite_their_spec_and_stay_small():
    root = Path(ledger.__file__).parent
    for name, cited in SPEC_MODULES.items():
        text = (root / name).read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        assert cited in doc, f"{name}: docstring should cite {cited}"
        assert len(text.splitlines()) < 500, f"{name} is too long"


def test_ledger_never_imports_market():
    root = Path(ledger.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "market" for a in node.names), path.name
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert (node.module or "").split(".")[0] != "market", path.name
