# One image for both services: the export API (default command) and the BFF
# (`command: ["xlsx-export-bff"]` in compose.yaml). The TDS dev server ships in the image
# too (`xlsx-export-devdb`), for running the stack without a real SQL Server.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY xlsx ./xlsx
COPY server ./server
COPY bff ./bff
COPY sql ./sql
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# No compilers or build caches in the runtime image; run as an unprivileged user.
RUN useradd --system --uid 10001 --no-create-home app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER app
ENV PYTHONUNBUFFERED=1
EXPOSE 3001 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3001/healthz', timeout=2).status == 200 else 1)"
CMD ["xlsx-export-api", "--host", "0.0.0.0", "--port", "3001"]
