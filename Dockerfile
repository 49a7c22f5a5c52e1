FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    GSD_STORE_URL=sqlite:////var/lib/gsd/gsd.sqlite3 GSD_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY destination ./destination
COPY mappings ./mappings
RUN pip install . && useradd --system --uid 10001 --home-dir /var/lib/gsd --create-home gsd
USER gsd
WORKDIR /var/lib/gsd
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)"
CMD ["gainsight-destination", "serve", "--port", "8080"]
