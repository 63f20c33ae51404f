"""Every table, imported in one place so ``SQLModel.metadata`` is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from ledger.store import CheckpointRow, Cosignature, Leaf, PendingEntry, Tile
from market.accounts.models import Account, AccountKey, ApiToken, TokenCount
from market.core.audit import TradeDocument
from market.core.idempotency import IdempotencyRecord
from market.core.memo import ChangeEpoch
from market.core.outbox import OutboxEvent
from market.dsp.models import DspCallback, DspNegotiation, DspTransfer
from market.listings.models import Listing, ListingDoc, ListingTerms
from market.notifications.models import Notification, WebhookAttempt, WebhookEndpoint, WebhookMessage
from market.oversight.models import (
    Alert,
    AlertedOrder,
    EvaluatorMark,
    OversightAction,
    Refusal,
    TradeDay,
    TradeParty,
    TradePartyMonth,
    TradeStat,
    TradeStatMonth,
)
from market.payments.models import StripeEvent
from market.registry.models import Asset, AssetRevision, Objection, RegistrationCounter, Transfer
from market.registry.tables import AssetTable
from market.trading.models import Delivery, DeliveryBatch, Dispute, Order, PaymentReturn, Payout, UsagePeriod
from market.usage.models import SandboxQuery, UsageCall

metadata = SQLModel.metadata

__all__ = [
    "Account", "AccountKey", "ApiToken", "TokenCount", "CheckpointRow", "Cosignature", "IdempotencyRecord", "Leaf",
    "PendingEntry", "Tile", "metadata", "Asset", "AssetRevision", "Objection", "RegistrationCounter", "Transfer",
    "Listing", "ListingDoc", "ListingTerms", "Delivery", "DeliveryBatch", "Dispute", "Order", "PaymentReturn", "Payout",
    "Refusal", "TradeDocument",
    "StripeEvent", "ChangeEpoch", "OutboxEvent", "DspCallback", "DspNegotiation", "DspTransfer",
    "Alert", "AlertedOrder", "EvaluatorMark", "OversightAction", "TradeDay", "TradeParty", "TradePartyMonth", "TradeStat",
    "TradeStatMonth",
    "Notification", "WebhookAttempt", "WebhookEndpoint", "WebhookMessage",
    "AssetTable", "SandboxQuery", "UsageCall", "UsagePeriod",
]
