"""Statuses of the registry's aggregates and their transition tables (pure data).

DESIGN §4.1: ``draft → submitted → public_notice → registered``, with ``rejected``,
``revoked`` and ``cancelled`` as exits; a change (变更) of a registered asset goes
``registered → submitted → public_notice → registered`` and a rejected change goes back
to ``registered`` with the registration untouched. ``frozen`` is a flag beside the
status: the transitions marked ``frozen_blocks`` are refused while it is set.
"""

from enum import StrEnum

from market.core.statemachine import Machine, Transition
from market.registry.models import Asset, Objection, Transfer


class AssetStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    public_notice = "public_notice"
    registered = "registered"
    rejected = "rejected"
    revoked = "revoked"
    cancelled = "cancelled"


class ObjectionStatus(StrEnum):
    open = "open"
    upheld = "upheld"
    dismissed = "dismissed"


class TransferStatus(StrEnum):
    proposed = "proposed"
    completed = "completed"
    withdrawn = "withdrawn"  # by the proposer (DELETE /v1/transfers/{id})
    void = "void"  # by the market: the key was revoked, or the asset changed hands, content or standing


S = AssetStatus
PUBLIC_STATUSES = frozenset({S.public_notice, S.registered, S.revoked, S.cancelled})
PENDING_OR_REGISTERED = frozenset({S.submitted, S.public_notice, S.registered})
UNDER_REVIEW = frozenset({S.submitted, S.public_notice})
LIVE = frozenset({S.draft, S.submitted, S.public_notice, S.registered})
RIGHTS = ("holding", "use", "operation")

T = Transition.of

ASSET = Machine("asset", Asset, AssetStatus, S.draft, {
    "edit": T({S.draft}, None, "asset.updated"),
    "upload": T({S.draft, S.registered}, None, "asset.content_uploaded", frozen_blocks=True),
    "submit": T({S.draft}, S.submitted, "asset.claim_submitted", frozen_blocks=True),
    "submit_change": T({S.registered}, S.submitted, "asset.claim_submitted", frozen_blocks=True),
    "approve": T({S.submitted}, S.public_notice, "asset.approved", frozen_blocks=True),
    "register": T({S.public_notice}, S.registered, "asset.notice_ended", frozen_blocks=True),
    "reject": T(UNDER_REVIEW, S.rejected, "asset.rejected"),
    "reject_change": T(UNDER_REVIEW, S.registered, "asset.rejected"),
    "transfer": T({S.registered}, None, "asset.holder_changed", frozen_blocks=True),
    "cancel": T({S.registered}, S.cancelled, "asset.cancelled", frozen_blocks=True),
    # A regulator revokes a registration, also while a change of it is under review.
    "revoke": T({S.registered, *UNDER_REVIEW}, S.revoked, "asset.revoked"),
    "freeze": T(LIVE, None, "asset.frozen"),
    "unfreeze": T(LIVE, None, "asset.unfrozen"),
}, subject=lambda a: f"asset:{a.id}", created="asset.created")

OBJECTION = Machine("objection", Objection, ObjectionStatus, ObjectionStatus.open, {
    "uphold": T({ObjectionStatus.open}, ObjectionStatus.upheld, "asset.objection_upheld"),
    "dismiss": T({ObjectionStatus.open}, ObjectionStatus.dismissed, "asset.objection_dismissed"),
}, subject=lambda o: f"asset:{o.asset_id}", created="asset.objection_filed")

TRANSFER = Machine("transfer", Transfer, TransferStatus, TransferStatus.proposed, {
    # The asset's ``transfer`` move writes the entry of an acceptance.
    "accept": T({TransferStatus.proposed}, TransferStatus.completed, None),
    "withdraw": T({TransferStatus.proposed}, TransferStatus.withdrawn, "asset.transfer_withdrawn"),
    "void": T({TransferStatus.proposed}, TransferStatus.void, "asset.transfer_voided"),
}, subject=lambda t: f"asset:{t.asset_id}", created="asset.transfer_proposed")

MACHINES = (ASSET, OBJECTION, TRANSFER)
