"""Trading (交易, DESIGN §4.2): orders and their approvals, settlement and the contract,
payments, delivery, disputes and refunds, statements and payouts.

Modules: ``states``, ``access`` (who sees and acts on an order), ``orders`` (placing,
approvals, cancellation), ``settlement``, ``checkout`` (the card gateway around the
order's transactions), ``returns`` (money that goes back), ``delivery``, ``proofs``,
``disputes``, ``statements``, ``read``, ``routes``.

An order follows its listing: when the listing is delisted (by its holder, or by the
market because its asset changed hands, was cancelled or revoked) its unpaid orders end
in the same transaction (``settlement.end_with_listing``, a subscriber of the listing's
moves in ``market.wiring.subscribers``).
"""
