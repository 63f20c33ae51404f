"""The platform every domain stands on: settings, the database, errors, ids and money,
the clock and ``Ctx``, the one state machine, the door to the ledger (``audit``), domain
events and the outbox, idempotency, change-aware memory, and signing."""
