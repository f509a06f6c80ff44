"""`agentrt serve`: the runtime as an HTTP service that several replicas share.

- `tokens`: bearer tokens → tenants (constant-time checks);
- `runs`: service runs and their stage events in the shared store;
- `runner`: `RunService`, runs and approvals without HTTP (resume once across replicas);
- `metrics`: Prometheus text;
- `app_state`: what routes and page share (tokens, redaction, the audit view);
- `api`: the FastAPI application (`create_app`);
- `page`: the server-rendered approvals page.

Needs the `service` extra (`pip install 'agent-runtime[service]'`).
"""
