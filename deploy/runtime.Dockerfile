# The runtime as a service (used by deploy/docker-compose.yml): `agentrt serve` and the CLI,
# with the service extra (FastAPI, uvicorn, psycopg). No GPU, no torch.
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY tools ./tools
COPY deploy ./deploy
RUN pip install --no-cache-dir ".[service]" && useradd --create-home agentrt
USER agentrt
ENTRYPOINT []
CMD ["agentrt", "--help"]
