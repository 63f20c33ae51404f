"""The commands a party runs on its own machine, with no database: ``market client``
(a signing key, signatures, downloads that verify themselves), ``market regulator``
(the regulator authority's key and the enrollments it signs) and ``market oversight
replay`` (a regulator checks a market from outside).

Only click and the standard library are imported here: each command imports what it
uses when it runs, so that a client command starts at once (the server's libraries,
SQLAlchemy, Alembic, Litestar, are never loaded by one).
"""

import sys
from pathlib import Path

import click


@click.group("client")
def client_group() -> None:
    """Helpers for a party: make a signing key, sign the bytes the API hands out."""


@client_group.command("keygen")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="where to write the private key (PEM, mode 0600; missing directories are made 0700)")
@click.option("--force", is_flag=True, help="replace an existing key file (its key is lost)")
def client_keygen(out: Path, force: bool) -> None:
    """Make an Ed25519 key; print its public key as the API wants it (base64 of 32 bytes)."""
    from market.tools import client

    try:
        click.echo(client.keygen(out, force=force))
    except client.ClientError as exc:
        raise click.ClickException(str(exc)) from None


@client_group.command("sign")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="the private key written by 'market client keygen'")
@click.argument("signing_bytes")
def client_sign(key_path: Path, signing_bytes: str) -> None:
    """Sign SIGNING_BYTES (base64, as the API gave it; '-' reads stdin); print the signature, base64."""
    from market.tools import client

    text = sys.stdin.read() if signing_bytes == "-" else signing_bytes
    try:
        click.echo(client.sign(key_path, text))
    except client.ClientError as exc:
        raise click.ClickException(str(exc)) from None


@client_group.command("uscc")
@click.option("--division", default="440300", show_default=True, help="6-digit administrative division code")
def client_uscc(division: str) -> None:
    """Print a random, well-formed unified social credit code, for trying the market."""
    from market.tools import client

    try:
        click.echo(client.trial_uscc(division))
    except client.ClientError as exc:
        raise click.ClickException(str(exc)) from None


@client_group.command("download")
@click.argument("order_id")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the content (a partial file is resumed)")
@click.option("--verify", is_flag=True, help="check size, SHA-256 and every chunk's Merkle proof against the "
                                             "contract's commitment")
@click.option("--range", "byte_range", default=None, metavar="FIRST-LAST",
              help="fetch and verify only the chunks covering these bytes (inclusive); write those bytes")
@click.option("--revision", type=click.IntRange(min=1), default=None,
              help="a subscription's revision (default: the contract's)")
@click.option("--base-url", default=None, help="the market's URL; default MARKET_BASE_URL, else "
                                               "http://MARKET_HOST:MARKET_PORT (127.0.0.1 and 8000 when unset)")
@click.option("--token", default=None, help="a bearer token; default MARKET_TOKEN")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--vkey", default=None, help="the log's verifier key for --verify's delivery receipts; default "
                                           "the market's /v1/ledger/key")
def client_download(order_id: str, out: Path, verify: bool, byte_range: str | None, revision: int | None,
                    base_url: str | None, token: str | None, quiet: bool, vkey: str | None) -> None:
    """Download ORDER_ID's content. Exit 0 when done (and verified), 1 when a check fails, 2 on HTTP errors."""
    import os

    from market.tools import client_download as dl

    token = token or os.environ.get("MARKET_TOKEN")
    if not token:
        raise click.UsageError("give --token or set MARKET_TOKEN (the buyer's bearer token)")
    span = None
    if byte_range is not None:
        try:
            span = dl.parse_byte_range(byte_range)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--range") from None
    with dl.client_for(base_url or market_url(), token) as http:
        code = dl.download(http, order_id, out, verify=verify, byte_range=span, revision=revision, show=not quiet,
                           vkey=vkey)
    sys.exit(code)


def market_url() -> str:
    """The default market URL (``endpoint.default_base_url``); a bad MARKET_PORT is a usage error."""
    from market.tools.endpoint import EndpointError, default_base_url

    try:
        return default_base_url()
    except EndpointError as exc:
        raise click.UsageError(str(exc)) from None


@click.group("regulator")
def regulator_group() -> None:
    """The regulator authority's side: its key, and the enrollments it signs."""


@regulator_group.command("authority-keygen")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the authority's private key (mode 0600; never over an existing file)")
@click.option("--name", default="regulator-authority", show_default=True,
              help="the key's name in its note vkey (no spaces, no '+')")
def regulator_authority_keygen(out: Path, name: str) -> None:
    """Make the regulator authority's key; print its note vkey (MARKET_REGULATOR_AUTHORITY) as the last line."""
    from ledger.errors import LedgerError
    from market.accounts.enrollment import EnrollmentError, authority_keygen

    try:
        vkey = authority_keygen(out, name)
    except (EnrollmentError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out}; set MARKET_REGULATOR_AUTHORITY to the vkey below for every market process", err=True)
    click.echo(vkey)


@regulator_group.command("enroll")
@click.option("--authority-key", "authority_key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the key 'market regulator authority-keygen' wrote")
@click.option("--name", required=True, help="the regulator's name (an institution)")
@click.option("--public-key", "public_key", required=True,
              help="the regulator's Ed25519 public key, base64 of 32 bytes ('market client keygen' prints it)")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the signed enrollment (JSON)")
def regulator_enroll(authority_key: Path, name: str, public_key: str, out: Path) -> None:
    """Sign the enrollment of a regulator whose public key is given; write it to --out."""
    import json

    from market.accounts.enrollment import EnrollmentError, enroll
    from market.core.types import utcnow

    try:
        document = enroll(authority_key, name, public_key.strip(), utcnow())
    except EnrollmentError as exc:
        raise click.ClickException(str(exc)) from None
    if out.exists():
        raise click.ClickException(f"{out} already exists; choose another --out")
    out.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    click.echo(f"wrote {out}: give it to the market's operator for 'market admin create-regulator --enrollment'",
               err=True)


# -- oversight -------------------------------------------------------------------


@click.group("oversight")
def oversight_group() -> None:
    """Oversight tools for regulators."""


@oversight_group.command("replay")
@click.argument("url", required=False)
@click.option("--vkey", required=True, help="the market's ledger verifier key (GET /v1/ledger/key)")
@click.option("--token", default=None, help="a regulator's API token; default MARKET_TOKEN")
@click.option("--json", "as_json", is_flag=True, help="print a machine-readable report")
@click.option("--workers", type=int, default=None, help="processes verifying the log (default: all CPUs)")
@click.option("--authority", default=None,
              help="the regulator authority's vkey: every regulator act must be signed by a key it enrolled")
def oversight_replay(url: str | None, vkey: str, token: str | None, as_json: bool, workers: int | None,
                     authority: str | None) -> None:
    """Verify the public log at URL (default MARKET_BASE_URL, else http://MARKET_HOST:MARKET_PORT),
    check every confidential document against its entry, recompute the overview from the
    documents and compare; with --authority, check every regulator act against the
    authority's enrollments. Exit 0 when all agree, 1 on any difference, 2 when the replay
    could not finish (the market unreachable among them)."""
    import os

    import httpx

    from market.oversight.replay import ReplayError, dumps, format_report, replay
    from market.tools.endpoint import unreachable

    token = token or os.environ.get("MARKET_TOKEN")
    if not token:
        raise click.UsageError("give --token or set MARKET_TOKEN (a regulator's API token)")
    url = (url or market_url()).rstrip("/")
    try:  # nothing listening is one line, not a log that "does not verify"
        httpx.get(f"{url}/v1/ledger/key", timeout=30, follow_redirects=False)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        click.echo(f"error: {unreachable(url, exc, 'Give the market URL, or set MARKET_BASE_URL')}; "
                   "nothing was concluded", err=True)
        sys.exit(2)
    except httpx.HTTPError:
        pass  # the replay says what is wrong
    try:
        report = replay(url, vkey, token, workers=workers, authority=authority)
    except ReplayError as exc:
        click.echo(f"error: {exc}; nothing was concluded", err=True)
        sys.exit(2)
    click.echo(dumps(report) if as_json else "\n".join(format_report(report)))
    sys.exit(0 if report.ok else 1)
