"""``python -m ledger``: offline tools for the market's audit ledger; no database, no market code.

    verify-bundle FILE --vkey VKEY          exit 0 valid, 1 invalid, 2 pending,
                                            65 not a bundle, 66 cannot read FILE
    verify-log SOURCE --vkey VKEY [--state FILE]
                                            exit 0 when all holds, 1 otherwise
    witness SOURCE --vkey VKEY --key FILE --state FILE [--name NAME]
                                            exit 0 cosigned, 1 refused or failed
    witness-keygen --name NAME --key FILE   writes a key (0600), prints its vkey

A command line that does not parse, or a ``--vkey`` that is not a log key, exits with
64 (EX_USAGE), so that it is never mistaken for "pending" or "invalid". A file that is no bundle at all (an error response saved in
its place, say) exits with 65 (EX_DATAERR) and an unreadable one with 66
(EX_NOINPUT): neither says anything about a certificate, so neither may read as
"invalid" (1), which means a bundle failed a check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from .errors import LedgerError
from .note import ALG_ED25519, Verifier
from .verify import BundleReport, verify_bundle, verify_log
from .witness import generate_witness_key, load_witness_key, witness_name, witness_once

EXIT_OK, EXIT_INVALID, EXIT_PENDING = 0, 1, 2
EXIT_USAGE, EXIT_NOT_A_BUNDLE, EXIT_NO_INPUT = 64, 65, 66  # sysexits.h: EX_USAGE, EX_DATAERR, EX_NOINPUT


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _vkey_problem(vkey: str) -> str | None:
    """Why ``--vkey`` cannot be the log's key, or None. A wrong argument is a usage error,
    never a verdict on what is being verified."""
    if not vkey.strip() or vkey.strip() == "null":
        return "--vkey is empty (or null): pass the log's verifier key; the market serves it at /v1/ledger/key"
    try:
        alg = Verifier.from_vkey(vkey).alg
    except LedgerError as e:
        return f"--vkey {vkey!r} is not the log's verifier key ({e}); the market serves it at /v1/ledger/key"
    if alg != ALG_ED25519:
        return f"--vkey {vkey!r} is a witness key, not the log's; the market serves the log's at /v1/ledger/key"
    return None


def _verify_bundle(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        print(f"cannot read {args.file}: {e.strerror}; nothing was verified", file=sys.stderr)
        return EXIT_NO_INPUT
    report = verify_bundle(data, args.vkey)
    if report.status == "not-a-bundle":
        print(_not_a_bundle(args.file, report), file=sys.stderr)
        return EXIT_NOT_A_BUNDLE
    if report.status == "valid":
        assert report.checkpoint is not None
        print(f"valid: entry {report.index} is in {report.checkpoint.origin} at size {report.checkpoint.size}")
        return EXIT_OK
    if report.status == "pending":
        print("pending: the entry is signed but not yet in the log")
        return EXIT_PENDING
    print(f"invalid: {report.failed_check} check failed: {report.error}", file=sys.stderr)
    return EXIT_INVALID


def _not_a_bundle(file: str, report: BundleReport) -> str:
    if report.problem is not None:
        p = report.problem
        said = " ".join(str(p[k]) for k in ("status", "title") if k in p)
        detail = f": {p['detail']}" if p.get("detail") else ""
        return (f"not a certificate bundle: {file} holds an error response ({said}{detail}); nothing was "
                "verified. Fetch the certificate again once that is resolved (curl -f refuses to save "
                "error responses)")
    return (f"not a certificate bundle: {file} is {report.error}; nothing was verified. Pass the file "
            "that a certificate URL returned, e.g. GET /v1/assets/{id}/certificate")


def _verify_log(args: argparse.Namespace) -> int:
    report = verify_log(args.source, args.vkey, args.state, workers=args.workers)
    if report.ok:
        assert report.root is not None
        extra = ""
        if report.consistency_checked:
            extra = f"; consistent with the stored checkpoint of size {report.previous_size}"
        print(
            f"ok: {report.entries_checked} entries, root {report.root.hex()}{extra} "
            f"({report.seconds:.1f} s, {report.workers} workers)"
        )
        return EXIT_OK
    print(f"FAILED: {report.error}", file=sys.stderr)
    return EXIT_INVALID


def _witness(args: argparse.Namespace) -> int:
    try:
        key = load_witness_key(args.key)
        name = args.name or witness_name(args.key, key)
        result = witness_once(args.source, args.vkey, key, args.state, name)
    except (LedgerError, OSError) as e:
        print(f"refused: {e}", file=sys.stderr)
        return EXIT_INVALID
    since = f" (consistent with size {result.previous_size})" if result.previous_size is not None else ""
    print(f"cosigned checkpoint of size {result.size}{since} at {result.timestamp}")
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    try:
        vkey = generate_witness_key(args.name, args.key)
    except FileExistsError:
        print(f"{args.key} exists; not overwriting it", file=sys.stderr)
        return EXIT_INVALID
    except (LedgerError, OSError) as e:
        print(f"cannot create the key: {e}", file=sys.stderr)
        return EXIT_INVALID
    print(vkey)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m ledger", description="Offline tools for the market's audit ledger.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("verify-bundle", help="check a certificate or contract bundle")
    p.add_argument("file")
    p.add_argument("--vkey", required=True, help="the market's verifier key")
    p.set_defaults(run=_verify_bundle)

    p = sub.add_parser("verify-log", help="check every entry, tile and the root of a log")
    p.add_argument("source", help="base URL of the market, or an exported directory")
    p.add_argument("--vkey", required=True)
    p.add_argument("--state", help="file holding the last checkpoint seen; updated on success")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    p.set_defaults(run=_verify_log)

    p = sub.add_parser("witness", help="check consistency, cosign and post the cosignature")
    p.add_argument("source", help="base URL of the market")
    p.add_argument("--vkey", required=True)
    p.add_argument("--key", required=True, help="witness key: raw 32-byte seed or PEM PKCS#8")
    p.add_argument("--state", required=True)
    p.add_argument("--name", help="witness name (default: from KEY.vkey)")
    p.set_defaults(run=_witness)

    p = sub.add_parser("witness-keygen", help="create a witness key and print its vkey")
    p.add_argument("--name", required=True)
    p.add_argument("--key", required=True)
    p.set_defaults(run=_keygen)

    args = parser.parse_args(argv)
    problem = _vkey_problem(args.vkey) if getattr(args, "vkey", None) is not None else None
    if problem is not None:
        parser.print_usage(sys.stderr)
        print(f"python -m ledger {args.command}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
