# One image for every Sentinel service; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY streams streams
COPY processors processors
COPY schemas schemas
COPY sinks sinks
COPY connectors connectors
COPY models models
COPY infra infra
RUN pip install .
USER nobody
ENTRYPOINT ["sentinel"]
