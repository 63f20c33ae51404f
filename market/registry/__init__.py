"""The registry (确权, DESIGN §4.1): assets, content revisions, signed ownership claims,
review, public notice, objections, registration certificates, transfer, cancellation.

Modules: ``states`` (statuses and transition tables), ``access`` (who sees what),
``assets``, ``content`` (the upload saga), ``claims``, ``review`` (review, notice,
registration, cancellation, revocation, freezing), ``objections``, ``transfers``,
``certificates``, ``routes``; reference data: ``categories`` (the closed list) and
``regions`` (行政区划 codes, ``regions.csv``).
"""
