"""A regulator's decisions as signed acts (DESIGN §2 invariant 9; docs/API.md "Regulators
are not the operator's to make"): every action, approval and alert closure is a
document the regulator signs with a key its authority enrolled, drafted and submitted
like an ownership claim (``market.core.signing``).

``draft`` hands out ``{"document", "signing_bytes"}``: ``{"type": "regulator-act",
"v": 1, "market", "kind", "regulator", "issued_at", "salt", …the request's own fields}``
(``action``: ``action``, ``target``, ``reason``; ``approval``: ``order``, ``decision``,
``reason``; ``alert_closure``: ``alert``, ``reason``). The salt (32 random bytes)
makes the document's hash reveal nothing of the reason.

``accept`` checks a submission ``{"signing_bytes", "key_id", "signature"}`` for one
route: a regulator's (403 otherwise); signed at all (``422 unsigned-act``); the
canonical bytes of an act of this market with exactly its kind's members
(``malformed-document``, ``non-canonical-document``, ``altered-document``); of the
route's kind, by the caller, about the route's order or alert (``422 act-mismatch``);
fresh (``422 stale-document``); signed by an unrevoked key of the caller
(``unknown-key``, ``revoked-key``, ``bad-signature``) that the configured authority
enrolled (``422 key-not-enrolled``); never accepted before (``409 act-used``). It
keeps the act (``regulator_acts``) and returns what the act's ledger entry carries:
``{"document_sha256", "key_id", "signature"}``. Never commits.
"""

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from market.accounts import signatures
from market.accounts.enrollment import EnrollmentError, authority_id
from market.accounts.models import RegulatorEnrollment
from market.accounts.regulators import enrolled_key
from market.accounts.schemas import Role, Strict
from market.core import audit, signing
from market.core.context import Ctx
from market.core.errors import Conflict, Unprocessable
from market.core.ids import new_id
from market.core.pagination import page_of, paginate
from market.core.types import rfc3339
from market.oversight.models import RegulatorAct

__all__ = ["ACT_TYPE", "Accepted", "ActKind", "accept", "draft", "list_acts", "list_enrollments"]

ACT_TYPE = "regulator-act"
ActKind = Literal["action", "approval", "alert_closure"]
_COMMON = frozenset({"type", "v", "market", "kind", "regulator", "issued_at", "salt"})
FIELDS: dict[str, frozenset[str]] = {
    "action": _COMMON | {"action", "target", "reason"},
    "approval": _COMMON | {"order", "decision", "reason"},
    "alert_closure": _COMMON | {"alert", "reason"},
}
SUBMISSION = frozenset({"signing_bytes", "key_id", "signature"})
HOW = ("a regulator's decision is a signed act: POST /v1/oversight/acts/draft with {\"kind\", …the request's "
       "fields}, sign the signing_bytes with a key your authority enrolled, and send {\"signing_bytes\", "
       "\"key_id\", \"signature\"}")


class _Reasoned(Strict):
    reason: str = Field(min_length=1, max_length=2000)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a reason is required")
        return value


class ActionFields(_Reasoned):
    action: Literal["freeze_asset", "unfreeze_asset", "freeze_listing", "unfreeze_listing", "suspend_account",
                    "reinstate_account", "revoke_registration"]
    target: str = Field(min_length=1, max_length=40)


class ApprovalFields(Strict):
    order: str = Field(min_length=1, max_length=40)
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2000)


class ClosureFields(_Reasoned):
    alert: str = Field(min_length=1, max_length=40)


SHAPES: dict[str, type[BaseModel]] = {"action": ActionFields, "approval": ApprovalFields,
                                      "alert_closure": ClosureFields}


class ActDraft(BaseModel):
    """The draft request: ``kind`` and the fields of that kind's request."""

    model_config = {"extra": "allow"}
    kind: ActKind


class SignedAct(Strict):
    signing_bytes: str = Field(min_length=1, max_length=100_000)
    key_id: str = Field(min_length=1, max_length=40)
    signature: str = Field(min_length=1, max_length=200)


@dataclass(frozen=True)
class Accepted:
    """An accepted act: its fields as signed, and what its ledger entry carries."""

    fields: dict[str, Any]
    evidence: dict[str, str]  # {"document_sha256", "key_id", "signature"}
    row: RegulatorAct


def _fields(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The request's own fields of ``kind``, validated as the route itself would (422)."""
    try:
        return SHAPES[kind].model_validate(values).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or kind
        raise Unprocessable(f"{where}: {first.get('msg', 'invalid')}", kind="invalid-act") from None


def draft(ctx: Ctx, kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The act document to sign (nothing is stored): ``{"document", "signing_bytes"}``."""
    ctx.user.require(Role.regulator)
    document = {"type": ACT_TYPE, "v": 1, "market": ctx.market, "kind": kind, "regulator": ctx.user.id,
                "issued_at": rfc3339(ctx.now), "salt": base64.b64encode(secrets.token_bytes(32)).decode(),
                **_fields(kind, values)}
    return signing.to_sign(document)


def submission(body: Any) -> SignedAct:
    """The signed body of a regulator route, or 422 ``unsigned-act`` saying how to sign."""
    if not isinstance(body, dict) or not SUBMISSION <= set(body):
        raise Unprocessable(HOW, kind="unsigned-act")
    try:
        return SignedAct.model_validate(body)
    except ValidationError:
        raise Unprocessable(f"the body must be exactly {{\"signing_bytes\", \"key_id\", \"signature\"}}, "
                            f"strings; {HOW}", kind="unsigned-act") from None


def _peek_kind(signing_bytes: str) -> Any:
    try:
        document = json.loads(base64.b64decode(signing_bytes, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None  # open_document says what is wrong
    return document.get("kind") if isinstance(document, dict) else None


async def accept(session: AsyncSession, ctx: Ctx, kind: str, body: Any, subject: str,
                 **route: str) -> Accepted:
    """Check the signed act submitted to a route of ``kind`` (``route``: the order or
    alert named by its path) and keep it; ``subject`` is what the act decides."""
    ctx.user.require(Role.regulator)
    signed = submission(body)
    claimed = _peek_kind(signed.signing_bytes)
    if claimed is not None and claimed != kind:
        raise Unprocessable(f"the signed act is a {claimed!r} act; this route takes a {kind!r} act", kind="act-mismatch")
    raw, document = signing.open_document(signed.signing_bytes, doc_type=ACT_TYPE, market=ctx.market,
                                          fields=FIELDS[kind])
    if document["regulator"] != ctx.user.id:
        raise Unprocessable(f"the act is by {document['regulator']!r}, not by the caller", kind="act-mismatch")
    for name, value in route.items():
        if not signing.same(document.get(name), value):
            raise Unprocessable(f"the act is about {name} {document.get(name)!r}, not {value!r}", kind="act-mismatch")
    salt = document["salt"]
    try:
        salt_ok = isinstance(salt, str) and len(base64.b64decode(salt, validate=True)) == 32
    except (binascii.Error, ValueError):
        salt_ok = False
    if not salt_ok:
        raise Unprocessable("the act's salt is not 32 random bytes, base64", kind="altered-document")
    fields = _fields(kind, {k: v for k, v in document.items() if k not in _COMMON})
    if not signing.same(fields, {k: v for k, v in document.items() if k not in _COMMON}):
        raise Unprocessable("the act's fields are not as the market drafts them", kind="altered-document")
    signing.check_fresh(document, ctx.now, kind="stale-document")
    key = await signatures.verify_party_signature(session, ctx.user.id, signed.key_id, signed.signature, raw)
    try:
        authority = authority_id(ctx.settings.regulator_authority)
    except EnrollmentError:
        authority = ""
    if not authority or await enrolled_key(session, key.id, authority) is None:
        raise Unprocessable(f"key {key.id} was not enrolled by the regulator authority this market trusts; "
                            "sign with the key of your enrollment", kind="key-not-enrolled")
    digest = audit.document_digest(document)
    if (await session.execute(select(col(RegulatorAct.id)).where(col(RegulatorAct.document_sha256) == digest))).first():
        raise Conflict("this signed act was accepted before; draft a new one", kind="act-used")
    row = RegulatorAct(id=new_id("sig"), kind=kind, account_id=ctx.user.id, key_id=key.id, signature=signed.signature, subject=subject,
                       document=raw.decode(), document_sha256=digest, created_at=ctx.now)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # the same act submitted twice at once
        raise Conflict("this signed act was accepted before; draft a new one", kind="act-used") from None
    return Accepted(fields=fields, evidence={"document_sha256": digest, "key_id": key.id,
                                            "signature": signed.signature}, row=row)


def act_read(row: RegulatorAct) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "regulator": row.account_id, "key_id": row.key_id,
            "signature": row.signature, "subject": row.subject, "document_sha256": row.document_sha256,
            "document": json.loads(row.document), "created_at": rfc3339(row.created_at)}


async def list_acts(session: AsyncSession, ctx: Ctx, limit: int, cursor: str | None) -> dict[str, Any]:
    """Every accepted act with its document (regulators: what their replay checks)."""
    ctx.user.require(Role.regulator)
    query = select(RegulatorAct)
    rows = list((await session.execute(paginate(query, RegulatorAct.id, limit, cursor))).scalars().all())
    return page_of(rows, limit, act_read)


def enrollment_read(row: RegulatorEnrollment) -> dict[str, Any]:
    return {"id": row.id, "account": row.account_id, "key_id": row.key_id, "authority": row.authority,
            "enrollment_sha256": row.enrollment_sha256, "enrollment": json.loads(row.enrollment),
            "created_at": rfc3339(row.created_at)}


async def list_enrollments(session: AsyncSession, ctx: Ctx, limit: int, cursor: str | None) -> dict[str, Any]:
    """Every regulator enrollment, signed by its authority (what the replay checks acts against)."""
    ctx.user.require(Role.regulator)
    query = select(RegulatorEnrollment)
    rows = list((await session.execute(paginate(query, RegulatorEnrollment.id, limit, cursor))).scalars().all())
    return page_of(rows, limit, enrollment_read)
