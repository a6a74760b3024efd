# Multi-stage: build a virtualenv with the CPU torch wheel and the project, then copy it into a slim runtime.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# CPU-only torch first so nothing pulls the CUDA packages.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY oirl ./oirl
COPY app ./app
COPY rlhf ./rlhf
COPY migrations ./migrations
RUN pip install '.[postgres]'

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 oirl \
 && apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    OIRL_HOME=/data
RUN mkdir -p /data && chown oirl:oirl /data
USER oirl
WORKDIR /home/oirl
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
# Migrations first (idempotent), then the service; --bootstrap trains a first model if none exists.
CMD ["sh", "-c", "oirl db upgrade && exec oirl serve --host 0.0.0.0 --port 8000"]
