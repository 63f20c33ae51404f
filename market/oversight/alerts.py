"""Alert rules and their evaluator (docs/API.md "Oversight"; docs/alerts.md).

The evaluator is the market's own analysis, run by the clock (``market.wiring.tasks.clock_once``):
it reads what happened since its last position in ``evaluator_marks`` — trade documents
(``trade.placed``, ``trade.settled``) by id, refused attempts by id — and evaluates each
rule in a read transaction, then opens alerts and advances the positions in one write
transaction (short: on SQLite it holds the write lock requests wait for). An alert is unique by
``(rule, subject_key, window)``: a later event of the same subject and window is linked
to the alert already open (its orders in ``alerted_orders``), and running the evaluator
twice, or in two processes at once, never opens a second one.

Alerts are not ledger entries. A regulator's closure is (``oversight.alert_closed``,
with the signed act's hash, key id and signature: ``market.oversight.acts``).
"""

import asyncio
import functools
import json
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts.models import Account
from market.accounts.schemas import Role
from market.core import outbox
from market.core.audit import TradeDocument
from market.core.context import Ctx
from market.core.db import run, table_of
from market.core.errors import NotFound
from market.core.ids import new_id
from market.core.pagination import page_of, paginate
from market.core.services import Services
from market.core.statemachine import Machine, Transition
from market.core.types import rfc3339
from market.oversight import acts
from market.oversight.models import Alert, AlertedOrder, EvaluatorMark, Refusal
from market.oversight.rules import ON_PLACED, ON_SETTLED, Finding, refused_attempt
from market.registry.models import Asset
from market.trading.models import Order


class AlertStatus(StrEnum):
    open = "open"
    closed = "closed"


# An alert's life: opened by the evaluator, closed by a regulator (on the ledger).
ALERT = Machine("alert", Alert, AlertStatus, AlertStatus.open, {
    "close": Transition.of({AlertStatus.open}, AlertStatus.closed, "oversight.alert_closed"),
}, subject=lambda alert: f"alert:{alert.id}")

# Rows committed out of id order (PostgreSQL assigns ids at insert, transactions commit
# later): an id skipped when the evaluator read past it is a gap of its mark, looked for
# again on every round for this long (a rolled-back insert's id never fills). Only the
# gaps are re-read, never the rows already seen; alerts being unique, reading a row
# twice would change nothing anyway.
REREAD = timedelta(seconds=60)
MAX_GAPS = 1_000
# Between two batches of a round the write lock is left free this long. SQLite's lock is
# not fair: a writer of another process (an operator's command, a second worker) polls
# for it on the busy handler at intervals of up to 100 ms, and batches that follow each
# other at once could keep it out past its busy timeout while a burst is worked through.
BATCH_PAUSE = 0.1

BATCH = 100


# -- storing findings -------------------------------------------------------------------


@dataclass
class Known:
    """What one evaluation (``evaluate``: one batch) learnt of alerts. Its write holds the
    marks' lock for its transaction (``_marks``), so no other evaluator opens or links
    alerts meanwhile, and a burst of one buyer's orders (a finding per order, all
    of one alert) reads the alert and its links once, not once per order. ``rows`` holds
    what ``_prefetch`` read, for the session keeps only what is referenced."""

    alerts: dict[tuple[str, str, str], Alert] = field(default_factory=dict)
    linked: dict[str, set[str]] = field(default_factory=dict)
    rows: list[Any] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)  # to insert at the write's end (``_link``)


@functools.cache
def _add_links(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table_of(AlertedOrder)).on_conflict_do_nothing(index_elements=["alert_id", "order_id"])


def _link(known: Known, alert_id: str, order_ids: list[str]) -> None:
    """Link ``order_ids`` to the alert: those not linked yet in this evaluation are
    inserted with every other link of the batch (``_insert_links``), any linked before
    left as they are."""
    linked = known.linked.setdefault(alert_id, set())
    new = [o for o in dict.fromkeys(order_ids) if o not in linked]
    known.links += [{"alert_id": alert_id, "order_id": o} for o in new]
    linked.update(new)


async def _insert_links(session: AsyncSession, known: Known) -> None:
    """A batch's new links in one insert (a burst of one buyer's orders is a finding per
    order, each linking one order to the same alert)."""
    if known.links:
        await run(session, _add_links(session.get_bind().dialect.name), known.links)
        known.links = []


async def _existing(session: AsyncSession, known: Known, f: Finding) -> Alert | None:
    key = (f.rule, f.subject_key, f.window)
    alert = known.alerts.get(key)
    if alert is None:
        alert = (await session.execute(select(Alert).where(col(Alert.rule) == f.rule, col(Alert.subject_key) == f.subject_key,
                                                           col(Alert.window) == f.window))).scalars().first()
        if alert is not None:
            known.alerts[key] = alert
    return alert


async def _merge(session: AsyncSession, known: Known, alert: Alert, f: Finding) -> None:
    """A later event of an alert's subject and window: link its orders (and refusals)."""
    _link(known, alert.id, f.orders)
    if f.refusal is not None:
        evidence = json.loads(alert.evidence)
        if f.refusal not in evidence.get("refusals", []):
            evidence["refusals"] = sorted([*evidence.get("refusals", []), f.refusal])
            await session.execute(update(Alert).where(col(Alert.id) == alert.id)
                                  .values(evidence=json.dumps(evidence, ensure_ascii=False)))


async def store(session: AsyncSession, ctx: Ctx, known: Known, f: Finding) -> bool:
    """Open the alert of ``f`` unless its (rule, subject, window) has one; True if opened."""
    alert = await _existing(session, known, f)
    if alert is None:
        alert = Alert(id=new_id("alr"), rule=f.rule, subject_key=f.subject_key, window=f.window,
                      subjects=json.dumps(list(dict.fromkeys(f.subjects))),
                      evidence=json.dumps(f.evidence, ensure_ascii=False), status=AlertStatus.open, opened_at=ctx.now)
        try:
            async with session.begin_nested():
                session.add(alert)
                await session.flush()
        except IntegrityError:  # another evaluator opened it meanwhile
            alert = await _existing(session, known, f)
            assert alert is not None
        else:
            known.alerts[(f.rule, f.subject_key, f.window)] = alert
            known.linked[alert.id] = set()
            _link(known, alert.id, f.orders)
            await outbox.to_role(session, ctx, "alert.opened", outbox.REGULATORS, alert.id, alert=alert.id, rule=f.rule,
                                subjects=list(dict.fromkeys(f.subjects)))
            return True
    await _merge(session, known, alert, f)
    return False


# -- the evaluator ----------------------------------------------------------------------


async def _marks(session: AsyncSession, *sources: str) -> dict[str, EvaluatorMark]:
    """The evaluator's positions, locked for this transaction on PostgreSQL (two
    processes' evaluators take turns; SQLite writers already do)."""
    for source in sources:
        if await session.get(EvaluatorMark, source) is None:
            try:
                async with session.begin_nested():
                    session.add(EvaluatorMark(source=source, position=0))
                    await session.flush()
            except IntegrityError:
                pass
    rows = (await session.execute(select(EvaluatorMark).where(col(EvaluatorMark.source).in_(sources))
                                  .with_for_update().execution_options(populate_existing=True))).scalars().all()
    return {row.source: row for row in rows}


class _Gaps:
    """The ids below a mark's position the evaluator has not seen (``EvaluatorMark.gaps``),
    each with when it was first missed; forgotten after ``REREAD``."""

    def __init__(self, mark: EvaluatorMark, now: float) -> None:
        held: dict[str, float] = json.loads(mark.gaps or "{}")
        self.ids = {int(k): at for k, at in held.items() if now - at < REREAD.total_seconds()}
        self.now = now

    def seen(self, ids: list[int]) -> None:
        for i in ids:
            self.ids.pop(i, None)

    def missed(self, after: int, ids: list[int]) -> None:
        """Read ``ids`` (ascending) after ``after``: what lies between and was not read is a gap."""
        if ids:
            for i in set(range(after + 1, ids[-1])).difference(ids):
                self.ids[i] = self.now
        if len(self.ids) > MAX_GAPS:  # keep the newest
            self.ids = dict(sorted(self.ids.items(), key=lambda kv: kv[1])[-MAX_GAPS:])

    def dumps(self) -> str:
        return json.dumps({str(k): at for k, at in sorted(self.ids.items())})


async def _evaluate_document(session: AsyncSession, ctx: Ctx, doc_type: str, subject: str) -> list[Finding]:
    rules = ON_SETTLED if doc_type == "trade.settled" else ON_PLACED if doc_type == "trade.placed" else ()
    if not rules or not subject.startswith("order:"):
        return []
    order = await session.get(Order, subject.removeprefix("order:"))
    if order is None or (doc_type == "trade.settled" and order.settled_at is None):
        return []
    found: list[Finding] = []
    for rule in rules:
        found += await rule(session, ctx, order)
    return found


async def _prefetch(session: AsyncSession, known: Known, docs: list[Any]) -> None:
    """Read the orders of a batch's documents, and the accounts and assets the rules read
    of them, in three queries: the rules' ``session.get`` then finds them in the session
    (one query per order, account and asset each was most of the evaluator's work)."""
    ids = list(dict.fromkeys(subject.removeprefix("order:") for _id, _type, subject in docs
                             if subject.startswith("order:")))
    if not ids:
        return
    orders = (await session.execute(select(Order).where(col(Order.id).in_(ids)))).scalars().all()
    accounts = sorted({o.buyer_id for o in orders} | {o.provider_id for o in orders})
    assets = sorted({o.asset_id for o in orders})
    known.rows = [
        orders,
        (await session.execute(select(Account).where(col(Account.id).in_(accounts)))).scalars().all() if accounts else [],
        (await session.execute(select(Asset).where(col(Asset.id).in_(assets)))).scalars().all() if assets else [],
    ]


@dataclass
class _Read:
    """What a batch read and found (``_read``), for its write (``_write``): the ids read
    after ``after`` and the gaps read again, of trade documents and of refusals."""

    findings: list[Finding]
    after: int
    docs: list[int]
    late_docs: list[int]
    refusals_after: int
    refusals: list[int]
    late_refusals: list[int]


_SOURCES = ("trade_documents", "refusals")


async def _read(session: AsyncSession, ctx: Ctx, known: Known, start: int | None) -> _Read:
    """A batch's reads and every rule's evaluation, changing nothing: the marks as they
    are (not locked), the documents after them and their gaps, the refusals likewise."""
    marks = {m.source: m for m in (await session.execute(
        select(EvaluatorMark).where(col(EvaluatorMark.source).in_(_SOURCES)))).scalars().all()}
    now = ctx.now.timestamp()
    docs = marks.get("trade_documents") or EvaluatorMark(source="trade_documents", position=0)
    refusals = marks.get("refusals") or EvaluatorMark(source="refusals", position=0)
    doc_gaps, refusal_gaps = _Gaps(docs, now), _Gaps(refusals, now)
    after = docs.position if start is None else start
    columns = (col(TradeDocument.id), col(TradeDocument.type), col(TradeDocument.subject))
    rows = (await session.execute(
        select(*columns).where(col(TradeDocument.id) > after).order_by(col(TradeDocument.id)).limit(BATCH))).all()
    late = [] if start is not None or not doc_gaps.ids else (await session.execute(
        select(*columns).where(col(TradeDocument.id).in_(doc_gaps.ids)).order_by(col(TradeDocument.id)))).all()
    await _prefetch(session, known, [*late, *rows])
    findings: list[Finding] = []
    for _doc_id, doc_type, subject in [*late, *rows]:
        findings += await _evaluate_document(session, ctx, doc_type, subject)
    new_refusals = (await session.execute(
        select(Refusal).where(col(Refusal.id) > refusals.position).order_by(col(Refusal.id)))).scalars().all()
    late_refusals = [] if not refusal_gaps.ids else (await session.execute(
        select(Refusal).where(col(Refusal.id).in_(refusal_gaps.ids)).order_by(col(Refusal.id)))).scalars().all()
    for refusal in [*late_refusals, *new_refusals]:
        findings += refused_attempt(refusal)
    return _Read(findings, after, [row.id for row in rows], [row.id for row in late], refusals.position,
                 [r.id or 0 for r in new_refusals], [r.id or 0 for r in late_refusals])


async def _write(session: AsyncSession, ctx: Ctx, known: Known, read: _Read) -> list[str]:
    """A batch's write: its findings stored, the marks moved past what it read. The marks
    are locked first (``_marks``) and their gaps worked out from them as they are now: an
    evaluator that moved them since the read changes nothing here but what is read again
    (alerts are unique by subject and window, so storing a finding twice is a no-op)."""
    marks = await _marks(session, *_SOURCES)
    now = ctx.now.timestamp()
    opened: list[str] = []
    for finding in read.findings:
        if await store(session, ctx, known, finding):
            opened.append(finding.rule)
    await _insert_links(session, known)
    docs, refusals = marks["trade_documents"], marks["refusals"]
    doc_gaps, refusal_gaps = _Gaps(docs, now), _Gaps(refusals, now)
    doc_gaps.seen(read.late_docs)
    doc_gaps.missed(read.after, read.docs)
    if read.docs:
        docs.position = max(docs.position, read.docs[-1])
    refusal_gaps.seen(read.late_refusals)
    refusal_gaps.missed(read.refusals_after, read.refusals)
    if read.refusals:
        refusals.position = max(refusals.position, read.refusals[-1])
    for mark, gaps in ((docs, doc_gaps), (refusals, refusal_gaps)):
        await session.execute(update(EvaluatorMark).where(col(EvaluatorMark.source) == mark.source)
                              .values(position=mark.position, gaps=gaps.dumps()))
    return opened


async def evaluate(session: AsyncSession, ctx: Ctx, start: int | None = None,
                   reader: AsyncSession | None = None) -> tuple[list[str], int | None]:
    """One batch (``BATCH`` documents after ``start``, or after the mark, with any of its
    gaps that have since committed): every rule; returns the alerts opened and where the
    next batch starts (None when nothing is left). Does not commit.

    The reads and the rules run in ``reader`` when given (a read session), and only the
    findings and the marks are written in ``session``: on SQLite the write lock, which
    every request that writes waits for, is held for that alone."""
    known = Known()
    read = await _read(reader or session, ctx, known, start)
    opened = await _write(session, ctx, known, read)
    # One batch per transaction: on SQLite a write transaction holds the one write
    # lock, so a burst of trades is worked through in short transactions.
    more = len(read.docs) == BATCH
    return opened, (read.docs[-1] if more else None)


async def evaluate_once(services: Services) -> list[str]:
    """The clock's round: evaluate what is new, a batch per transaction, with a pause
    between batches (``BATCH_PAUSE``)."""
    opened: list[str] = []
    start: int | None = None
    while True:
        async with services.read_sessionmaker() as reader, services.sessionmaker() as session:
            found, start = await evaluate(session, Ctx.system(services), start, reader)
            await session.commit()
        opened += found
        if start is None:
            return opened
        await asyncio.sleep(BATCH_PAUSE)


# -- reading and closing ----------------------------------------------------------------


def alert_read(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule, "subjects": json.loads(alert.subjects),
            "evidence": json.loads(alert.evidence), "window": alert.window,
            "opened_at": rfc3339(alert.opened_at), "status": alert.status,
            "closed_at": rfc3339(alert.closed_at) if alert.closed_at else None, "closed_by": alert.closed_by,
            "close_reason": alert.close_reason}


async def list_alerts(session: AsyncSession, ctx: Ctx, status: str | None, rule: str | None, limit: int,
                      cursor: str | None) -> dict[str, Any]:
    ctx.user.require(Role.regulator, Role.operator)
    query = select(Alert)
    if status:
        query = query.where(col(Alert.status) == status)
    if rule:
        query = query.where(col(Alert.rule) == rule)
    rows = list((await session.execute(paginate(query, Alert.id, limit, cursor))).scalars().all())
    return page_of(rows, limit, alert_read)


async def close(session: AsyncSession, ctx: Ctx, alert_id: str, body: Any) -> Alert:
    """A regulator closes an open alert with a signed act (``acts.accept``) carrying the
    reason (kept; on the ledger the act's hash, key id and signature)."""
    ctx.user.require(Role.regulator)
    accepted = await acts.accept(session, ctx, "alert_closure", body, f"alert:{alert_id}", alert=alert_id)
    reason = accepted.fields["reason"]
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    # The act's salted document holds the reason: its hash replaces a bare reason_sha256.
    await ALERT.move(session, alert, "close", ctx, {"rule": alert.rule, "act": accepted.evidence},
                     closed_at=ctx.now, closed_by=ctx.user.id, close_reason=reason)
    return alert
