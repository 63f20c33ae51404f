"""Oversight (监管, DESIGN §4.3): statistics kept at settlement, trade search and CSV,
refusals, alert rules, the regulator's actions and approvals, ledger status, the
documents behind confidential entries and their replay, and the dashboard."""
