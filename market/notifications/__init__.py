"""Notifications and webhooks (docs/API.md "Notifications and webhooks"): the consumer side
of the outbox (``market.core.outbox``).

- ``dispatch``: after a change commits, each ``outbox`` row becomes inbox notifications
  for its recipients (a role fans out to every account holding it) and one webhook
  message per matching enabled endpoint, in one transaction per batch.
- ``sender``: posts due webhook messages (Standard Webhooks), retries on
  ``MARKET_WEBHOOK_RETRY_SCHEDULE``, disables an endpoint whose schedule ran out.
- ``inbox`` and ``webhooks``: the services behind the routes (``routes``).
Domains emit through ``market.core.outbox`` (``notify``, ``to_account``, ``to_role``;
trading's order, dispute and payout notices are shaped in ``market.trading.notices``):
no domain imports this package.
"""
