# The runtime as a service (used by deploy/docker-compose.yml). No GPU, no torch.
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY tools ./tools
COPY deploy ./deploy
RUN pip install --no-cache-dir . && useradd --create-home agentrt
USER agentrt
ENTRYPOINT []
CMD ["agentrt", "--help"]
