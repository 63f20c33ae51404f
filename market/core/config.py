"""Settings from ``MARKET_*`` environment variables (and an optional ``.env``).

Every setting is documented in the README with its default. ``create_app`` takes a
``Settings`` instance, so tests and embedders never depend on the environment.
"""

import re
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.errors import LedgerError
from ledger.note import Verifier

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
# s3://bucket or s3://bucket/prefix, the bucket named as S3 allows (3-63 characters).
_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^\s]*)?")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``10d``, ``36h``, ``90m``, ``90s`` or a bare number of seconds (``0`` allowed)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"bad duration {text!r}, want a number with s, m, h or d (e.g. 10d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


_DELAY = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_schedule(text: str) -> list[timedelta]:
    """``5s,5m,30m,2h`` (fractions allowed: ``0.05s``) → the waits before each retry."""
    delays = []
    for item in text.split(","):
        match = _DELAY.match(item.strip())
        if not match:
            raise ValueError(f"bad retry delay {item.strip()!r}, want a number with s, m, h or d (e.g. 5m)")
        delays.append(timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]))
    return delays


def async_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``sqlite://`` URLs and give SQLAlchemy's async form."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def _networks(text: str) -> list[IPv4Network | IPv6Network]:
    """``10.0.0.0/8, 192.168.1.5 ::1`` → networks (an address is a network of one)."""
    networks = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
    return networks


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKET_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    ledger_origin: str = "ledger.market.example/log"
    # The market's public address, for its absolute links: the DCAT catalog's
    # identifiers, the index at /, problem types (<public_url>/problems/<kind>);
    # empty: taken from each request.
    public_url: str = ""
    name: str = "Data-element market"  # the exchange's name, as the catalog's publisher
    # The market's participant id in the Dataspace Protocol (the assigner of every
    # agreement); empty: urn:market:<slug of MARKET_NAME>.
    dsp_participant_id: str = ""
    ledger_witnesses: str = ""
    ledger_integrate_interval: float = 0.2
    ledger_tile_memory: int = 4096
    currency: str = "CNY"
    jurisdiction: str = "CN"
    # The regulator's time zone (an IANA name): the dashboard shows every moment in it,
    # with its offset. Stored times and the API stay UTC.
    timezone: str = "Asia/Shanghai"
    # Search answers remembered for callers who see what an anonymous caller sees
    # (market.listings.routes); 0 turns the memory off (every search runs).
    search_memory: int = 1024
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 10 * 1024**3
    notice_period: str = "10d"
    clock_interval: float = 5.0
    background_tasks: bool = True
    # Where the market's own work runs (ledger integration, the clock, notifications, DSP
    # callbacks; market.wiring.worker): "process" - `market serve` starts one `market work`
    # process beside its API processes, which then only keep their view of the ledger fresh;
    # "inline" - in every API process; "elsewhere" - not here (a `market work` runs it,
    # e.g. on another machine). An app built in a process of its own (tests, embedding)
    # runs it inline unless "elsewhere".
    worker: Literal["process", "inline", "elsewhere"] = "process"
    rate_limit_per_minute: int = 600
    rate_limit_signups_per_hour: int = 20
    max_tokens_per_account: int = 20  # live (unrevoked) API tokens one account may hold
    # Addresses or CIDR networks (comma or space separated) that may read /metrics
    # without a token; empty: staff tokens only.
    metrics_allow: str = ""
    redis_url: str = ""
    redis_prefix: str = "market"
    # Where content lives (docs/storage.md): "file" (under MARKET_DATA_DIR/blobs) or
    # "s3://bucket/prefix" in an S3-compatible object store (credentials: the AWS_* variables).
    blob_store: str = "file"
    s3_endpoint_url: str = ""  # MinIO, Ceph, Garage or any S3 service; empty: AWS's own endpoint
    # Payments (docs/API.md "Orders"): Stripe is off while the secret key is empty.
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = "https://api.stripe.com"  # tests point it at localstripe
    fee_bps: int = 500  # the market's fee in basis points of the price, 0..10000
    dispute_window: str = "7d"
    # Delivery receipts (docs/trading.md): one delivery.sent entry per order per window,
    # or sooner once it holds this many receipts.
    delivery_receipt_window: str = "60s"
    delivery_receipt_batch: int = 1000
    # Oversight alert rules (docs/alerts.md) and the ledger's witness watch.
    wash_window: str = "30d"  # wash_trade: A buys from B and B from A within this
    price_outlier_factor: int = 5  # price_outlier: above factor x, or below 1/factor of, the category median
    order_burst_count: int = 20  # order_burst: more than this many orders by one buyer ...
    order_burst_window: str = "1h"  # ... within this
    witness_stale_after: str = "1h"  # a witness that has not cosigned for this long is flagged stale
    # The regulator authority's note vkey (docs/regulators.md): regulators are enrolled by
    # its signature, and a regulator's act counts only with a key it enrolled. Empty: no
    # regulator can be created and no regulator act is accepted.
    regulator_authority: str = ""
    # Notifications and webhooks (docs/notifications.md).
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h"  # waits before each retry; then the endpoint is disabled
    webhook_allow_private: bool = False  # allow loopback, private and link-local webhook addresses
    webhook_timeout: float = 10.0  # seconds a receiver has to answer one delivery
    webhook_concurrency: int = 32  # deliveries in flight at once, per process
    notify_interval: float = 0.5  # seconds between rounds of the dispatcher and the sender
    # The market's account that bank transfers are paid to (order payment instructions).
    bank_account: str = "DEMO BANK 6222 0210 0000 0000 888 Data-element market clearing account"
    # Usage-controlled delivery (docs/usage.md).
    sandbox_timeout: str = "10s"  # longest a sandbox query or a look-up may run
    sandbox_memory: str = "512MB"  # DuckDB's memory limit per loaded table
    sandbox_epsilon: float = 0.1  # what a query spends of an order's budget when it does not say
    sandbox_max_content: int = 2 * 1024**3  # largest content a table may be described for (held in memory)
    sandbox_tables: int = 4  # loaded tables each process keeps
    postpaid_grace: str = "14d"  # a metered period's charge unpaid this long after the period stops access

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _webhook_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("regulator_authority")
    @classmethod
    def _authority(cls, value: str) -> str:
        value = value.strip()
        if value:
            # The checks of market.accounts.enrollment.authority_verifier, on the ledger's
            # note keys directly (the settings import no domain).
            try:
                verifier = Verifier.from_vkey(value)
            except LedgerError as exc:
                raise ValueError(f"the regulator authority's vkey is malformed ({exc})") from None
            if verifier.alg != 1:
                raise ValueError("the regulator authority's vkey must be an Ed25519 note key (alg 0x01)")
        return value

    @field_validator("blob_store")
    @classmethod
    def _blob_store(cls, value: str) -> str:
        value = value.strip()
        if value != "file" and not _S3_URL.fullmatch(value):
            raise ValueError("blob_store must be 'file' or s3://bucket or s3://bucket/prefix")
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _s3_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"https?://[^\s/]+/?", value):
            raise ValueError("s3_endpoint_url must be an http(s):// address of the service, e.g. http://minio:9000")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("currency must be an ISO 4217 code such as CNY")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "Asia"
            raise ValueError(f"{value!r} is not a time zone of the IANA database, e.g. Asia/Shanghai or UTC") from None
        return value

    @field_validator("notice_period")
    @classmethod
    def _notice(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("dispute_window")
    @classmethod
    def _dispute_window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("wash_window", "order_burst_window", "witness_stale_after", "delivery_receipt_window",
                     "sandbox_timeout", "postpaid_grace")
    @classmethod
    def _positive_durations(cls, value: str) -> str:
        if parse_duration(value) <= timedelta(0):
            raise ValueError(f"the duration must be positive, got {value!r}")
        return value

    @field_validator("sandbox_memory")
    @classmethod
    def _sandbox_memory(cls, value: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*(KB|MB|GB)", value):
            raise ValueError(f"sandbox_memory is a size such as 512MB or 2GB, got {value!r}")
        return value

    @field_validator("sandbox_epsilon")
    @classmethod
    def _sandbox_epsilon(cls, value: float) -> float:
        if not 0 < value <= 10:
            raise ValueError(f"sandbox_epsilon must be above 0 and at most 10, got {value}")
        return value

    @field_validator("delivery_receipt_batch")
    @classmethod
    def _receipt_batch(cls, value: int) -> int:
        if not 1 <= value <= 100_000:
            raise ValueError(f"delivery_receipt_batch must be from 1 to 100000, got {value}")
        return value

    @field_validator("price_outlier_factor")
    @classmethod
    def _outlier_factor(cls, value: int) -> int:
        if value < 2:
            raise ValueError(f"price_outlier_factor must be 2 or more, got {value}")
        return value

    @field_validator("order_burst_count")
    @classmethod
    def _burst_count(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"order_burst_count must be 1 or more, got {value}")
        return value

    @field_validator("max_tokens_per_account")
    @classmethod
    def _max_tokens(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"max_tokens_per_account must be 1 or more (sign-up issues one), got {value}")
        return value

    @field_validator("metrics_allow")
    @classmethod
    def _metrics_allow(cls, value: str) -> str:
        _networks(value)
        return value

    @field_validator("fee_bps")
    @classmethod
    def _fee_bps(cls, value: int) -> int:
        if not 0 <= value <= 10_000:
            raise ValueError(f"fee_bps must be within 0..10000, got {value}")
        return value

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return async_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'market.db').as_posix()}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def notice_delta(self) -> timedelta:
        return parse_duration(self.notice_period)

    @property
    def dispute_delta(self) -> timedelta:
        return parse_duration(self.dispute_window)

    @property
    def sandbox_timeout_seconds(self) -> float:
        return parse_duration(self.sandbox_timeout).total_seconds()

    @property
    def postpaid_grace_delta(self) -> timedelta:
        return parse_duration(self.postpaid_grace)

    @property
    def delivery_receipt_delta(self) -> timedelta:
        return parse_duration(self.delivery_receipt_window)

    @property
    def wash_delta(self) -> timedelta:
        return parse_duration(self.wash_window)

    @property
    def order_burst_delta(self) -> timedelta:
        return parse_duration(self.order_burst_window)

    @property
    def witness_stale_delta(self) -> timedelta:
        return parse_duration(self.witness_stale_after)

    @property
    def metrics_networks(self) -> list[IPv4Network | IPv6Network]:
        return _networks(self.metrics_allow)

    @property
    def webhook_retry_delays(self) -> list[timedelta]:
        return parse_schedule(self.webhook_retry_schedule)

    @property
    def witness_vkeys(self) -> list[str]:
        return [v.strip() for v in re.split(r"[,\s]+", self.ledger_witnesses) if v.strip()]



__all__ = ["Settings", "async_database_url", "parse_duration"]
