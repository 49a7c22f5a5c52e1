# gainsight-destination: docker build -t gainsight-destination .
#   docker run -p 8080:8080 -v gsd-data:/var/lib/gsd -e GSD_DESTINATIONS=/etc/gsd/destinations.yaml ...
# Stops within docker's default 10 s grace: requests get 3 s, deliveries in flight the rest of
# GSD_DRAIN_SECONDS (8 s); an unfinished call is delivered again after restart.
FROM python:3.11-slim

# Behind a company proxy: --build-arg PIP_INDEX_URL=https://pypi.example.internal/simple (pip reads
# it), and for a TLS-inspecting proxy its CA certificate, as PEM text:
# --build-arg CA_BUNDLE="$(cat company-ca.pem)" (added to the image's trust store; pip uses it).
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG CA_BUNDLE=""

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GSD_HOST=0.0.0.0 GSD_PORT=8080 GSD_STORE_URL=sqlite:////var/lib/gsd/gsd.sqlite3
WORKDIR /app

RUN if [ -n "$CA_BUNDLE" ]; then \
        printf '%s\n' "$CA_BUNDLE" > /usr/local/share/ca-certificates/build-ca.crt \
        && update-ca-certificates \
        && pip config --global set global.cert /etc/ssl/certs/ca-certificates.crt; \
    fi

# Dependencies first, pinned by constraints.txt: this layer is rebuilt only when they change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -c constraints.txt -r requirements.txt

COPY README.md ./
COPY destination ./destination
COPY mappings ./mappings
# The home directory is the store's volume: created empty (no skeleton dotfiles), owned by the service.
RUN pip install --no-deps -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /var/lib/gsd --no-create-home --shell /usr/sbin/nologin gsd \
    && install -d -o gsd -g gsd -m 0750 /var/lib/gsd

# The store (SQLite queue, dead letters, rate windows). A mounted directory must be writable by
# uid 10001 (the service says so in one line when it is not).
VOLUME /var/lib/gsd
USER 10001
WORKDIR /var/lib/gsd
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('GSD_PORT', '8080'), timeout=2).status == 200 else 1)"
CMD ["gainsight-destination", "serve"]
