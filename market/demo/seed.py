"""``market demo``: seed a believable exchange through the market's own services.

Each party signs up and is verified (KYC) by a reviewing desk of the market; each
provider registers a signing key, creates its assets, uploads their (synthetic)
content, signs ownership claims, and the desk approves them; registered assets are
then listed with plans and licence terms; a demo authority enrolls a regulator; and a
history of trading runs from then to now. Every step is the service call a request
would make, so everything is on the ledger and in search, and nothing is written that
the services would not write.

**Time.** The demo runs the market on its own clock (``market.demo.clock``), set back
``AGE``: the parties sign up then, assets are registered and listed in the days after,
and the history (``market.demo.plan``, ``market.demo.history``) runs from a week later to
now, every row carrying the time the clock said. Registration follows review after the
public notice (公示) of ``notice_period``; with the market's default notice (10 days) the
demo refuses unless told otherwise: ``--notice-period 0`` (or ``MARKET_NOTICE_PERIOD=0``)
registers each asset at approval, and its ``asset.approved`` entry says
``notice_seconds: 0``. That is a setting for a throwaway demo database, never for a real
market. A notice of up to ``MAX_NOTICE`` is waited out on the demo's clock.

**Idempotent.** Parties are found by their credit code (abroad: name and jurisdiction),
assets by provider and title, listings by asset, the regulator by its key: a second run
completes whatever a first run left unfinished (a fresh signing key is registered only
if a claim still needs signing; a party whose token was not kept gets a new one) and
otherwise writes nothing. The history is made once, on a database holding no orders;
a later run leaves the orders it finds (docs/demo.md). Tokens are kept in the data
directory (``market.demo.keep``): the market stores them hashed only.
"""

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import service as accounts
from market.accounts.enrollment import EnrollmentError
from market.accounts.models import Account, ApiToken
from market.accounts.schemas import AccountCreate, AccountStatus
from market.core import db
from market.core.config import Settings
from market.core.context import Ctx
from market.core.errors import DomainError
from market.core.ids import new_id
from market.core.services import Services
from market.core.types import utcnow
from market.demo import keep, regulator
from market.demo.cast import EXTRA_ASSETS, EXTRA_PARTIES, ForeignParty
from market.demo.clock import DemoClock
from market.demo.data import (
    ASSETS,
    CATEGORIES,
    OPERATOR,
    PARTIES,
    SHOWN_BUYER,
    SHOWN_PROVIDER,
    AssetSpec,
    PartySpec,
    content,
    listing_for,
)
from market.demo.history import make, offers
from market.demo.keep import tokens
from market.demo.notice import MAX_NOTICE, DemoRefused, check_notice
from market.demo.plan import plan
from market.demo.report import Summary, report
from market.listings import service as listing_service
from market.listings.models import Listing
from market.registry import assets, claims, review
from market.registry import content as uploads
from market.registry.models import Asset
from market.registry.schemas import AssetCreate
from market.registry.states import RIGHTS, AssetStatus
from market.trading.models import Order
from market.web.auth import Caller
from market.web.credentials import AccountSnapshot
from market.wiring import services as wiring

SYNTHETIC = "（演示用合成数据 synthetic demo data）"
AGE = timedelta(days=170)  # how long ago the demo market opened: parties, then assets, then listings
TRADING = timedelta(days=7)  # trading begins this long after the market opened
MIN_HISTORY = timedelta(days=30)
TRADES = 360  # settled orders in the history, by default
ALL_PARTIES: tuple[PartySpec | ForeignParty, ...] = (*PARTIES, *EXTRA_PARTIES)
ALL_ASSETS = (*ASSETS, *EXTRA_ASSETS)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _Demo:
    def __init__(self, services: Services, notice: timedelta, clock: DemoClock, kept: keep.Kept) -> None:
        self.services = services
        self.clock = clock
        self.opened = clock.now()  # the demo market opens
        self.kept = kept
        self.fresh: dict[str, str] = {}  # account id -> the token this run signed it up with
        self.settings = services.settings
        self.notice = notice
        self.engine = services.engine
        self.maker = services.sessionmaker
        self.log = services.ledger
        self.master_key = services.content_key()
        self.blobs = services.blobs
        self.signers: dict[str, tuple[str, Ed25519PrivateKey]] = {}  # this run's keys, never stored
        self.summary = Summary()

    def ctx(self, caller: Caller | None) -> Ctx:
        return Ctx.of(self.services, caller)

    async def commit(self, session: AsyncSession) -> None:
        await session.commit()
        self.summary.writes += 1

    # -- parties ----------------------------------------------------------------------------------------

    async def party(self, spec: PartySpec | ForeignParty, desk: Caller | None) -> Caller:
        """The party's account (signed up and verified if need be), as a caller."""
        async with self.maker() as s:
            if isinstance(spec, ForeignParty):
                found = select(Account).where(Account.name == spec.name, Account.jurisdiction == spec.jurisdiction)
            else:
                found = select(Account).where(Account.uscc == spec.uscc)
            account = (await s.exec(found.order_by(col(Account.id)))).first()
            if account is None:
                data = AccountCreate.model_validate({
                    "name": spec.name, "kind": spec.kind, "roles": list(spec.roles), "uscc": spec.uscc,
                    "jurisdiction": spec.jurisdiction if isinstance(spec, ForeignParty) else None})
                account, token = await accounts.create_account(s, self.ctx(None), data, bootstrap=desk is None)
                await self.commit(s)
                self.summary.new_accounts += 1
                self.fresh[account.id] = token
                if spec.key in (SHOWN_PROVIDER, SHOWN_BUYER):
                    role = "provider" if spec.key == SHOWN_PROVIDER else "buyer"
                    self.summary.tokens.append((role, spec.name, account.id, token))
            if account.status == AccountStatus.pending and desk is not None:
                await accounts.decide_verification(s, self.ctx(desk), account.id, "approve",
                                                   "演示：营业执照与经办人身份已核验")
                await self.commit(s)
                await s.refresh(account)
            token_id = (await s.exec(select(col(ApiToken.id)).where(col(ApiToken.account_id) == account.id)
                                     .order_by(col(ApiToken.created_at)))).first()
        self.summary.accounts += 1
        return Caller(account=AccountSnapshot.of(account), token_id=token_id or "")

    async def signer(self, caller: Caller) -> tuple[str, Ed25519PrivateKey]:
        """A signing key for this run, registered when first needed (its private half is
        kept in memory only: the demo's parties sign nothing after the demo ends)."""
        if caller.id not in self.signers:
            key = Ed25519PrivateKey.generate()
            public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
            async with self.maker() as s:
                row = await accounts.add_key(s, self.ctx(caller), public)
                await self.commit(s)
            self.signers[caller.id] = (row.id, key)
        return self.signers[caller.id]

    # -- assets -----------------------------------------------------------------------------------------

    async def load(self, s: AsyncSession, caller: Caller, title: str) -> Asset | None:
        query = (select(Asset).where(col(Asset.provider_id) == caller.id, col(Asset.title) == title)
                 .order_by(col(Asset.id)))
        return (await s.exec(query.execution_options(populate_existing=True))).first()

    async def asset(self, spec: AssetSpec, party: PartySpec, caller: Caller, desk: Caller) -> Asset | None:
        """Take the asset as far as registration (or approval, with a notice running)."""
        async with self.maker() as s:
            asset = await self.load(s, caller, spec.title)
            if asset is None:
                asset_id = new_id("ast")
                _, wrapped = self.master_key.new_data_key(asset_id)
                data = AssetCreate(
                    title=spec.title, description=spec.detail, category=spec.category,
                    tags=[CATEGORIES[spec.category], *spec.tags], grade=spec.grade,
                    personal_info=spec.personal_info, legal_basis=spec.legal_basis,
                    export_allowed=spec.export, source=party.source + SYNTHETIC, format=spec.fmt)
                asset = await assets.create(s, self.ctx(caller), data, wrapped, asset_id)
                await self.commit(s)
            if asset.status == AssetStatus.draft and asset.content_revision == 0:
                body = content(spec)
                await uploads.upload(s, self.ctx(caller), asset.id, _once(body), str(len(body)), self.blobs,
                                     self.master_key)
                self.summary.writes += 1
                asset = await self.load(s, caller, spec.title)
                assert asset is not None
            if asset.status == AssetStatus.draft:
                await s.commit()  # ends the read (SQLite's write lock): the key is added in a session of its own
                key_id, key = await self.signer(caller)
                document = await claims.claim_to_sign(s, self.ctx(caller), asset.id, list(RIGHTS))
                signature = base64.b64encode(key.sign(base64.b64decode(document["signing_bytes"]))).decode()
                asset = await claims.submit_claim(s, self.ctx(caller), asset.id, document["signing_bytes"], key_id,
                                                  signature)
                await self.commit(s)
            if asset.status == AssetStatus.submitted:
                asset = await review.review(s, self.ctx(desk), asset.id, "approve", "演示：权属与来源材料齐全", False)
                await self.commit(s)
                if asset.status == AssetStatus.registered:
                    self.summary.new_assets += 1
            return asset

    async def close_notices(self, waiting: list[Asset]) -> None:
        """Wait out notices that end within MAX_NOTICE on the demo's clock, then register as
        the market's clock does."""
        ends = [a.notice_ends_at for a in waiting if a.notice_ends_at is not None]
        due = [e for e in ends if e <= self.clock.now() + MAX_NOTICE]
        if not due:
            return
        self.clock.set(max(self.clock.now(), max(due) + timedelta(seconds=1)))
        async with self.maker() as s:
            done = await review.close_notice_periods(s, self.ctx(None))
            await self.commit(s)
        mine = {a.id for a in waiting}
        self.summary.new_assets += len(mine.intersection(done))

    # -- listings ---------------------------------------------------------------------------------------

    async def publish(self, spec: AssetSpec, asset: Asset, caller: Caller, buyers: dict[str, str]) -> bool:
        """List the asset unless it was ever listed (a listing its holder delisted stays so)."""
        async with self.maker() as s:
            listing = (await s.exec(select(Listing).where(col(Listing.asset_id) == asset.id)
                                    .order_by(col(Listing.id)))).first()
            if listing is None:
                listing = await listing_service.publish(s, self.ctx(caller), listing_for(spec, asset.id, buyers, self.settings.currency))
                await self.commit(s)
                self.summary.new_listings += 1
            return listing.status == "active"

    async def integrate(self) -> None:
        while True:
            async with self.maker() as s:
                if not await self.log.integrate(s):
                    return

    # -- the whole ---------------------------------------------------------------------------------------

    async def catalogue(self) -> tuple[Caller, dict[str, Caller]]:
        """Parties (the market opens), then assets (the next day), then listings."""
        desk = await self.party(OPERATOR, None)
        callers = {p.key: await self.party(p, desk) for p in ALL_PARTIES}
        parties = {p.key: p for p in ALL_PARTIES if isinstance(p, PartySpec)}
        buyers = {k: c.id for k, c in callers.items()}
        found: dict[AssetSpec, Asset | None] = {}
        self.clock.advance(timedelta(days=1))

        async def provider(key: str) -> None:
            for spec in (s for s in ALL_ASSETS if s.provider == key):
                try:
                    found[spec] = await self.asset(spec, parties[key], callers[key], desk)
                except DomainError as exc:
                    found[spec] = None
                    self.summary.pending.append(f"{spec.title}: {exc}")

        keys = sorted({s.provider for s in ALL_ASSETS})
        if db.is_sqlite(self.engine):  # one writer at a time anyway
            for key in keys:
                await provider(key)
        else:  # providers side by side, each its own assets in order
            await asyncio.gather(*(provider(key) for key in keys))
        held = [(spec, found[spec]) for spec in ALL_ASSETS]
        waiting = [a for _, a in held if a is not None and a.status == AssetStatus.public_notice]
        if waiting:
            await self.close_notices(waiting)
        self.clock.advance(timedelta(days=1))
        for spec, asset in held:
            if asset is None:
                continue
            async with self.maker() as s:
                asset = await self.load(s, callers[spec.provider], spec.title)
            assert asset is not None
            if asset.status != AssetStatus.registered:
                until = f" until {asset.notice_ends_at:%Y-%m-%d %H:%M:%S} UTC" if asset.notice_ends_at else ""
                self.summary.pending.append(f"{spec.title}: {asset.status}{until}")
                continue
            self.summary.assets += 1
            self.summary.by_category[spec.category] = self.summary.by_category.get(spec.category, 0) + 1
            try:
                if await self.publish(spec, asset, callers[spec.provider], buyers):
                    self.summary.listings += 1
            except DomainError as exc:
                self.summary.pending.append(f"{spec.title}: not listed: {exc}")
        return desk, callers

    async def keep_tokens(self, everyone: list[tuple[str, str, Caller]]) -> None:
        """Every party's token in the tokens file: the one it signed up with in this run,
        else the one kept; a party with neither (seeded before tokens were kept) gets a new one."""
        parties = []
        for key, name, caller in everyone:
            token = self.fresh.get(caller.id) or self.kept.token(caller.id)
            if token is None:
                async with self.maker() as s:
                    token = (await accounts.create_token(s, self.ctx(caller), "demo")).token
                    await self.commit(s)
            parties.append(keep.Party(key, sorted(caller.account.role_set), name, caller.id, token))
        self.kept.parties = parties

    async def history(self, callers: dict[str, Caller], desk: Caller, reg: regulator.Regulator, size: int,
                      end: datetime) -> None:
        """The trading history from a week after the market opened to ``end``, made once,
        on a database holding no orders."""
        before = self.kept.history
        async with self.maker() as s:
            orders = (await s.exec(select(func.count()).select_from(Order))).one()
            listed = (await s.exec(select(func.max(Listing.created_at)).where(
                col(Listing.provider_id).in_([c.id for c in callers.values()])))).one()
        if orders:
            if before and before.get("complete"):
                self.summary.history_before = (f"made before: {before['from']} to {before['to']}, "
                                               f"{before['orders']} orders, {before['settled']} settled")
            elif before:
                self.summary.pending.append("history: an earlier run stopped while making it; for the whole "
                                            "history start from an empty data directory (MARKET_DATA_DIR)")
            else:
                self.summary.pending.append(f"history: not made, the database holds {orders} orders that are not "
                                            "the demo's (the history is made on a database without orders)")
            return
        if size <= 0:
            self.summary.history_before = "not made (--trades 0)"
            return
        start = max(self.opened + TRADING, (listed or end) + timedelta(days=1))
        if end - start < MIN_HISTORY:
            self.summary.pending.append(f"history: not made, the catalogue was listed on {listed:%Y-%m-%d} by an "
                                        "earlier run, and a history needs months before now: start from an empty "
                                        "data directory (MARKET_DATA_DIR)")
            return
        accounts_ = {k: c.id for k, c in callers.items()}
        async with self.maker() as s:
            found = await offers(s, {c.id: k for k, c in callers.items()})
        history = plan(found, accounts_, start, end, size)
        self.summary.period = (f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}")
        self.kept.history = {"from": self.summary.period[0], "to": self.summary.period[1], "complete": False}
        keep.save(self.settings, self.kept)
        made = await make(self.services, self.clock, callers, desk, reg, history)
        self.summary.history = made
        self.summary.writes += made.orders + made.refusals
        self.kept.history.update(orders=made.orders, settled=made.settled, complete=True)

    async def run(self, size: int, end: datetime) -> Summary:
        kept = asdict(self.kept)
        desk, callers = await self.catalogue()
        reg = await regulator.enrolled(self.services, keep.folder(self.settings))
        self.summary.accounts += 1
        self.summary.regulator = f"{regulator.REGULATOR_NAME} ({reg.caller.id})"
        if reg.token is not None:
            self.fresh[reg.caller.id] = reg.token
            self.summary.new_accounts += 1
            self.summary.writes += 1
        everyone = [(OPERATOR.key, OPERATOR.name, desk), ("regulator", regulator.REGULATOR_NAME, reg.caller),
                    *((p.key, p.name, callers[p.key]) for p in ALL_PARTIES)]
        await self.keep_tokens(everyone)
        for role, (_key, name, caller) in (("operator", everyone[0]), ("regulator", everyone[1])):
            if caller.id in self.fresh:
                self.summary.tokens.insert(0 if role == "operator" else 1, (role, name, caller.id,
                                                                           self.fresh[caller.id]))
        self.kept.regulator_key = str(keep.folder(self.settings) / keep.REGULATOR_KEY)
        self.kept.authority = self.settings.regulator_authority
        await self.history(callers, desk, reg, size, end)
        if asdict(self.kept) != kept:
            keep.save(self.settings, self.kept)
        if self.summary.changed:
            await self.integrate()
        return self.summary


async def seed(settings: Settings, notice: timedelta | None = None, trades: int = TRADES) -> Summary:
    """Seed (or complete) the demo market in the database of ``settings``, with a history
    of about ``trades`` settled orders (0: none)."""
    notice = settings.notice_delta if notice is None else notice
    check_notice(notice)
    started = time.monotonic()
    folder = keep.folder(settings)
    try:
        kept = keep.load(settings)
        authority = regulator.authority(folder)
    except (keep.KeptError, EnrollmentError) as exc:
        raise DemoRefused(str(exc)) from None
    now = utcnow()
    clock = DemoClock(now - AGE)
    demo_settings = settings.model_copy(update={"notice_period": f"{int(notice.total_seconds())}s",
                                                "regulator_authority": authority, "stripe_secret_key": ""})
    async with wiring.services(demo_settings, clock=clock, listen=False) as services:
        summary = await _Demo(services, notice, clock, kept).run(trades, now)
    summary.seconds = time.monotonic() - started
    summary.base_url = f"http://{settings.host}:{settings.port}"
    summary.tokens_file = str(folder / keep.TOKENS)
    summary.regulator_key = str(folder / keep.REGULATOR_KEY)
    summary.authority = authority
    summary.configured_authority = settings.regulator_authority
    return summary


__all__ = ["MAX_NOTICE", "TRADES", "DemoRefused", "Summary", "check_notice", "report", "seed", "tokens"]
