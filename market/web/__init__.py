"""The HTTP edge: the Litestar app factory, authentication, rate limits, the OpenAPI
document, and the ledger's public routes."""
