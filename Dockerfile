# syntax=docker/dockerfile:1
# One image for both services; the command chooses which:
#   xlsx-export-api   the export API on port 3001 (the default command)
#   xlsx-export-bff   the BFF and download page on port 3000
# The TDS dev server ships too (xlsx-export-devdb), for a stack without SQL Server.
# compose.yaml runs SQL Server 2022, the schema, two API replicas and the BFF from it.

# Build stage: our wheel and a wheel of every dependency, so the final stage installs offline
# and needs no compiler, build backend or cache. gcc compiles the row code's two C extensions
# (setup.py; without a compiler they are skipped and rows take the slower Python path).
FROM python:3.11-slim AS build
# Debian's versions unpinned: a pin breaks the build on every point release of the base image,
# and nothing of this stage but the wheels reaches the final image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.cfg setup.py README.md ./
COPY xlsx ./xlsx
COPY server ./server
COPY bff ./bff
COPY sql ./sql
COPY httpedge ./httpedge
COPY primitive_cells ./primitive_cells
COPY tdsrows ./tdsrows
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Final stage: the slim runtime, the installed wheels and nothing else. The wheels are
# mounted for the install only (BuildKit), so they leave no layer behind; the image build
# fails if the compiled row code is missing rather than ship a service at a third the speed.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
# No version pinned: --no-index installs only the wheels built above from this tree, each
# dependency at the version the build stage resolved; nothing is fetched here.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels xlsx-stream-export \
    && python -c "import tdsrows._rowscan, xlsx._rowxml"
USER app
# Both services listen on loopback by default (a dev machine must not expose them by
# accident); in a container they must be reachable from the other containers.
ENV PYTHONUNBUFFERED=1 \
    API_HOST=0.0.0.0 \
    BFF_HOST=0.0.0.0
EXPOSE 3001 3000
# The default command's health: the API's /healthz (compose.yaml gives the BFF its own).
# Python's urllib, since the slim image has no curl or wget.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3001/healthz', timeout=2).status != 200)"]
CMD ["xlsx-export-api"]
