"""Data-element market: the backend of a data exchange.

Providers register data assets and get ownership confirmed (确权), list them (挂牌)
and sell licences; buyers buy and receive data; regulators oversee every trade.
Every state change that matters is signed into the audit ledger (`ledger`).
"""

__version__ = "0.1.0"
