# One image for every Sentinel service; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SENTINEL_DATA_DIR=/data SENTINEL_MODEL_DIR=/models
COPY pyproject.toml README.md ./
COPY streams streams
COPY processors processors
COPY schemas schemas
COPY sinks sinks
COPY connectors connectors
COPY models models
COPY infra infra
RUN pip install . \
 && mkdir -p /data /models \
 && cp -r models/registry/. /models/ \
 && chown -R nobody /data /models
# A named volume on /models starts as a copy of the committed registry (the champion model).
USER nobody
ENTRYPOINT ["sentinel"]
