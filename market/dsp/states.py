"""The protocol's state machines (DSP 2025-1 §§ contract negotiation, transfer process), on
the shared ``Machine``: the provider's side of each.

Entries: every step writes a confidential ``dsp.*`` document (``market.dsp.steps``) beside
the move, like the order's ``trade.*``; the machines write none themselves.
"""

from enum import StrEnum

from market.core.statemachine import Machine, Transition
from market.dsp.models import DspNegotiation, DspTransfer


class NegotiationState(StrEnum):
    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class TransferState(StrEnum):
    REQUESTED = "REQUESTED"
    STARTED = "STARTED"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    TERMINATED = "TERMINATED"


N = NegotiationState
P = TransferState
T = Transition.of
OPEN_NEGOTIATION = frozenset({N.REQUESTED, N.OFFERED, N.ACCEPTED, N.AGREED, N.VERIFIED})
UNAGREED = frozenset({N.REQUESTED, N.OFFERED, N.ACCEPTED})
OPEN_TRANSFER = frozenset({P.REQUESTED, P.STARTED, P.SUSPENDED})

NEGOTIATION = Machine("dsp_negotiation", DspNegotiation, NegotiationState, N.REQUESTED, {
    "offer": T({N.REQUESTED}, N.OFFERED, None),  # the provider's offer: the order awaits payment
    "counter": T({N.OFFERED}, N.REQUESTED, None),  # the consumer's counter-offer
    "accept": T({N.OFFERED}, N.ACCEPTED, None),  # the consumer accepts the provider's offer
    "agree": T({N.REQUESTED, N.ACCEPTED}, N.AGREED, None),  # the order is settled: its contract is the agreement
    "verify": T({N.AGREED}, N.VERIFIED, None),
    "finalize": T({N.VERIFIED}, N.FINALIZED, None),
    "terminate": T(OPEN_NEGOTIATION, N.TERMINATED, None),
}, subject=lambda n: f"order:{n.order_id}" if n.order_id else f"negotiation:{n.id}")

TRANSFER = Machine("dsp_transfer", DspTransfer, TransferState, P.REQUESTED, {
    "start": T({P.REQUESTED, P.SUSPENDED}, P.STARTED, None),
    "suspend": T({P.STARTED}, P.SUSPENDED, None),
    "complete": T({P.STARTED}, P.COMPLETED, None),
    "terminate": T(OPEN_TRANSFER, P.TERMINATED, None),
}, subject=lambda t: f"order:{t.order_id}")

MACHINES = (NEGOTIATION, TRANSFER)
