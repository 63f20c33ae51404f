"""The Dataspace Protocol (DSP 2025-1, HTTPS binding), provider side (docs/dsp.md).

Another connector finds the public listings as a DCAT catalog of datasets and offers,
negotiates a contract (an order of the market, through the same gates, approvals and
payment) and pulls the content under a transfer process whose token ends with it. The
protocol's processes are rows of their own (``models``) moved by the shared ``Machine``
(``states``); each step is a confidential entry on the ledger like the order's own;
the messages the market sends back go out through ``callbacks`` after the answer.
"""
