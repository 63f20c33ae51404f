# Production image: the same install as `make run`, migrations on start, several workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MARKET_HOST=0.0.0.0 MARKET_PORT=8000 MARKET_WORKERS=4 MARKET_DATA_DIR=/data

# /data/keys exists in the image, owned by the market's user, so that a volume mounted
# there (compose.yaml: the two keys, shared by every market service) starts out writable by it.
RUN useradd --create-home --uid 10001 market && mkdir -p /data/keys /app && chown -R market:market /data \
    && chmod 0700 /data/keys
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY ledger ./ledger
COPY market ./market
# The written contract, served at /docs/api and /docs/ledger.
COPY docs ./docs
RUN pip install --no-cache-dir -e .

USER market
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status == 200 else 1)"
# `market serve` applies migrations, makes the ledger key if missing, then starts the workers.
CMD ["market", "serve"]
