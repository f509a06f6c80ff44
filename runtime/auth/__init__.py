"""Who is calling an HTTP service of the runtime: bearer tokens mapped to tenants and agents.

- `tokens`: `load_tokens(path) -> TokenTable`, `TokenTable.lookup(token) ->
  Principal | None`; the tokens file is YAML, read strictly.
- `bearer`: `BearerAuth`, an ASGI middleware answering 401 to a request
  without a known token and putting the `Principal` in the scope of the rest.

Used by `agentrt mcp serve --transport http --tokens FILE`.
"""

from __future__ import annotations

from runtime.auth.bearer import BearerAuth, bearer_token, principal_of
from runtime.auth.tokens import Principal, TokenFileError, TokenTable, load_tokens

__all__ = [
    "BearerAuth",
    "Principal",
    "TokenFileError",
    "TokenTable",
    "bearer_token",
    "load_tokens",
    "principal_of",
]
