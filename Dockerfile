# One image for every Sentinel service; the command picks the role (see docker-compose.yml).
# The native parts (processors/native and schemas/native, Rust) are built into a wheel in a first
# stage that has the Rust toolchain; the image itself carries no compiler.
FROM python:3.11-slim AS build
COPY --from=rust:1-slim-bookworm /usr/local/cargo /usr/local/cargo
COPY --from=rust:1-slim-bookworm /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams streams
COPY processors processors
COPY schemas schemas
COPY sinks sinks
COPY connectors connectors
COPY models models
COPY infra infra
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SENTINEL_DATA_DIR=/data SENTINEL_MODEL_DIR=/models
# Only the wheel: a source tree here would shadow the installed package (it has no native part).
COPY --from=build /wheels /wheels
COPY models/registry /tmp/registry
RUN pip install /wheels/*.whl && rm -rf /wheels \
 && mkdir -p /data /models \
 && cp -r /tmp/registry/. /models/ && rm -rf /tmp/registry \
 && chown -R nobody /data /models
# A named volume on /models starts as a copy of the committed registry (the champion model).
USER nobody
ENTRYPOINT ["sentinel"]
