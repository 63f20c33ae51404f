"""Listings and discovery (挂牌, DESIGN §4.2): listings of registered assets, plans and
licence terms as data, private plans, full-text search in Chinese and English, and the
DCAT catalog.

Modules: ``states``, ``access`` (who sees and orders what), ``service`` (publish,
update, freeze), ``read`` (presenters, search results), ``text`` (segmentation),
``search`` (the query, on SQLite FTS5 or PostgreSQL ``tsvector``), ``index`` (keeping
search documents true), ``catalog`` (DCAT-AP), ``routes``.

A listing's place in search follows its asset and its holder: ``index`` and
``service.delist_for_asset`` run as subscribers of their moves (``market.wiring.subscribers``).
"""
