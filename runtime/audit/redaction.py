"""Redaction of audit fields before they reach the log.

What is removed, in order:

1. **Policy paths** (`audit.redact` in a policy, e.g. `args.password`,
   `args.card.number`, `args.users.*.token`): the value at that path becomes
   `{"redacted": "path"}`. The first segment selects the root: `args` /
   `arguments` (the call's arguments, also the default when there is no known
   root) or `result` (a stored result). `*` matches any key; lists are
   transparent (`args.cards.number` reaches every card's number).
2. **Secret key names** anywhere in a structured value (`password`, `token`,
   `api_key`, `authorization`, ... — `DEFAULT_SECRET_KEYS`; compared without
   case, `_` or `-`): the value becomes `{"redacted": "key"}`.
3. **Secret patterns** in every string, including error messages and
   tracebacks: API keys (`sk-...`, `AKIA...`, `ghp_...`, `xox?-...`, `AIza...`,
   Stripe keys), JWTs, bearer tokens, PEM private keys, passwords in URLs
   (`scheme://user:pass@`) and `password=...`-style assignments. Only the
   secret is replaced, by `[REDACTED:<kind>]`, so the message stays readable.
4. **Size caps**: a string argument over `value_cap` characters, or arguments
   whose canonical JSON exceeds `arguments_cap` bytes, become
   `{"redacted": "size", "len": N, "sha256": ...}`; free text (error
   messages, raw model output) is truncated after redaction.

The full, unredacted arguments are never stored; their HMAC-SHA256 (key
derived from the audit key) is, as `agentrt.tool.arguments_hmac`, so an
auditor holding the key can confirm a claimed value with `arguments_hmac`.
Tool results (and stdout/stderr) are stored as size and SHA-256 only, unless
`store_results` is set; stored content is redacted like arguments.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runtime.audit.events import Field
from runtime.audit.records import canonical_json, derive_key, json_safe

__all__ = ["DEFAULT_SECRET_KEYS", "Redactor", "arguments_hmac", "redact_text"]

DEFAULT_SECRET_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "clientsecret",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "sessiontoken",
        "apikey",
        "secretkey",
        "accesskey",
        "privatekey",
        "authorization",
        "cookie",
        "setcookie",
        "credentials",
    }
)

# Every alternative starts with a literal that is rare in ordinary text
# (`-`, `_`, `:`, `A`, `J`), with a fixed-width lookbehind for the rest of
# the prefix. That lets `re` skip ahead with a first-character set instead of
# trying each branch at every position: ~0.3 µs for a typical short string
# instead of ~2 µs. Keep it so. The named group is the part replaced.
_SECRETS = re.compile(
    r"-----BEGIN(?P<private_key>[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*))"
    r"|://[^\s/:@]{0,256}:(?P<url_password>[^\s/@]{1,256})@"
    r"|-(?<=sk-)(?P<api_key>[A-Za-z0-9_-]{16,})"
    r"|-(?<=xox[abposr]-)(?P<slack_token>[A-Za-z0-9-]{10,})"
    r"|_(?<=[rs]k_)(?:live|test)_(?P<stripe_key>[A-Za-z0-9]{16,})"
    r"|_(?<=gh[pousr]_)(?P<github_token>[A-Za-z0-9]{30,})"
    r"|_(?<=github_)pat_(?P<github_pat>[A-Za-z0-9_]{22,})"
    r"|A(?:KIA|SIA)(?P<aws_access_key>[0-9A-Z]{16})"
    r"|AIza(?P<google_api_key>[0-9A-Za-z_-]{35})"
    r"|J(?<=eyJ)(?P<jwt>[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
# How many characters of each token's prefix precede the match, for the
# word-boundary check ("task-..." contains "sk-..." but is not an API key).
_PREFIX_LEN = {
    "api_key": 2,
    "slack_token": 4,
    "stripe_key": 2,
    "github_token": 3,
    "github_pat": 6,
    "aws_access_key": 0,
    "google_api_key": 0,
    "jwt": 2,
}
_BEARER = re.compile(r"(?<![A-Za-z0-9])(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
# `password=...`, `"api_key": "..."`, `Authorization: Basic ...`: run only
# when a cheap check finds a separator and a label word (the regex is slower).
_LABEL_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
_LABELS = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(?P<label>password|passwd|passphrase|pwd|secret|token|api[_-]?key|secret[_-]?key"
    r"|access[_-]?key|private[_-]?key|authorization|credentials?)"
    r"(?P<sep>\\?[\"']?\s*[:=]\s*(?:(?:bearer|basic|token|digest)\s+)?)"
    r"(?P<value>\\\"(?:[^\"\\]|\\[^\"])*\\\"|\"[^\"]*\"|'[^']*'|[^\s\"',;}\]]+)",
    re.IGNORECASE,
)
_TEXT_SCAN_LIMIT = 1 << 20
_CLEAN_CACHE_SIZE = 4096
_CLEAN_CACHE_MAX_LEN = 256
_NODE_END = "\x00"
_PATH_REDACTED = {"redacted": "path"}
_KEY_REDACTED = {"redacted": "key"}
_UNSEEN: Any = object()

Trie = dict[str, Any]


def _secret_replacement(match: re.Match[str]) -> str:
    kind = match.lastgroup or "secret"
    start = match.start()
    prefix = _PREFIX_LEN.get(kind)
    if prefix is not None:
        before = start - prefix - 1
        if before >= 0 and match.string[before].isalnum():
            return match.group(0)
    text = match.group(0)
    return (
        text[: match.start(kind) - start] + f"[REDACTED:{kind}]" + text[match.end(kind) - start :]
    )


def _label_replacement(match: re.Match[str]) -> str:
    value = match["value"]
    if value.startswith('\\"'):
        replaced = '\\"[REDACTED]\\"'
    elif value[0] in "\"'":
        replaced = f"{value[0]}[REDACTED]{value[0]}"
    else:
        replaced = "[REDACTED]"
    return match["label"] + match["sep"] + replaced


def redact_text(text: str) -> str:
    """Replace secrets found by pattern in free text (see the module docstring)."""
    if len(text) < 8:
        return text
    if _SECRETS.search(text) is not None:
        text = _SECRETS.sub(_secret_replacement, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1[REDACTED:bearer_token]", text)
    if "=" in text or ":" in text:
        lowered = text.lower()
        if any(word in lowered for word in _LABEL_WORDS):
            text = _LABELS.sub(_label_replacement, text)
    return text


def _size_marker(data: bytes, length: int) -> dict[str, Any]:
    return {"redacted": "size", "len": length, "sha256": hashlib.sha256(data).hexdigest()}


def _normal_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


class _Hmac:
    """HMAC-SHA256 with the keyed pad states computed once.

    `hmac.digest` re-keys on every call (~1.5 µs); copying two prepared
    SHA-256 states costs ~0.6 µs, a large share of the write budget.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, data: bytes) -> str:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def arguments_hmac(arguments: Any, key: bytes | str) -> str:
    """The `agentrt.tool.arguments_hmac` of `arguments` under the audit master key.

    An auditor confirms a claimed value by computing this over the claimed
    arguments (a dict, or the raw string when the model's JSON did not parse)
    and comparing it with the record.
    """
    master = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.digest(derive_key(master, "arguments"), canonical_json(arguments), "sha256").hex()


class Redactor:
    """Turns the fields a pipeline step reports into fields safe to store.

    Args:
        redact_paths: Dotted paths from policy `audit.redact`.
        hmac_key: The audit master key; without it no argument HMAC is stored.
        store_results: Store (redacted) tool results and stdout/stderr, not
            only their size and SHA-256.
        secret_keys: Key names whose values are always redacted.
        value_cap: Longest string kept inside a structured value.
        arguments_cap: Largest canonical arguments (bytes) stored at all.
        text_cap: Longest free text kept (error messages, stdout, tracebacks).
        raw_cap: Longest raw model text (`agentrt.tool.arguments_raw`) kept.
        max_depth: Deeper structure is replaced by a size marker.
        max_items: Longer lists and dicts are replaced by a size marker.
    """

    def __init__(
        self,
        *,
        redact_paths: Iterable[str] = (),
        hmac_key: bytes | None = None,
        store_results: bool = False,
        secret_keys: Iterable[str] = DEFAULT_SECRET_KEYS,
        value_cap: int = 4096,
        arguments_cap: int = 64 * 1024,
        text_cap: int = 8192,
        raw_cap: int = 4096,
        max_depth: int = 32,
        max_items: int = 1000,
    ) -> None:
        self._options: dict[str, Any] = {
            "hmac_key": hmac_key,
            "store_results": store_results,
            "secret_keys": tuple(secret_keys),
            "value_cap": value_cap,
            "arguments_cap": arguments_cap,
            "text_cap": text_cap,
            "raw_cap": raw_cap,
            "max_depth": max_depth,
            "max_items": max_items,
        }
        self._args_mac = _Hmac(derive_key(hmac_key, "arguments")) if hmac_key else None
        self.store_results = store_results
        self._secret_keys = frozenset(_normal_key(k) for k in secret_keys)
        self._key_cache: dict[str, str | None] = {}
        self._clean: set[str] = set()
        self._value_cap = value_cap
        self._arguments_cap = arguments_cap
        self._text_cap = text_cap
        self._raw_cap = raw_cap
        self._max_depth = max_depth
        self._max_items = max_items
        self.redact_paths = tuple(redact_paths)
        self._args_nodes, self._result_nodes, self._raw_keys = self._compile(self.redact_paths)
        self._handlers: dict[str, Callable[[str, Any, dict[str, Any]], None]] = {
            Field.ARGUMENTS: self._arguments,
            Field.ARGUMENTS_RAW: self._raw_arguments,
            Field.RESULT: self._output,
            Field.STDOUT: self._output,
            Field.STDERR: self._output,
            Field.ERROR_MESSAGE: self._free_text,
            Field.ERROR_DETAILS: self._free_text,
        }

    def _compile(self, paths: tuple[str, ...]) -> tuple[tuple[Trie, ...], tuple[Trie, ...], Any]:
        args: Trie = {}
        result: Trie = {}
        last_names: set[str] = set()
        for path in paths:
            segments = [s for s in path.strip().split(".") if s]
            if not segments:
                continue
            root = args
            if segments[0] in ("args", "arguments", "result") and len(segments) > 1:
                root = result if segments[0] == "result" else args
                segments = segments[1:]
            node = root
            for segment in segments:
                node = node.setdefault(segment, {})
            node[_NODE_END] = True
            if segments[-1] != "*":
                last_names.add(re.escape(segments[-1]))
        # Raw model text has no reliable structure: redact every `"name": value`
        # whose name ends a configured path, wherever it appears.
        raw_keys = (
            re.compile(
                r"(\\?\"(?:" + "|".join(sorted(last_names)) + r")\\?\"\s*:\s*)"
                r"(\\\"(?:[^\"\\]|\\[^\"])*\\\"|\"(?:[^\"\\]|\\.)*\"|[^,}\]\s]+)"
            )
            if last_names
            else None
        )
        return ((args,) if args else ()), ((result,) if result else ()), raw_keys

    def with_redact_paths(self, redact_paths: Iterable[str]) -> Redactor:
        """A copy of this redactor with other policy paths (e.g. after a policy reload)."""
        return Redactor(redact_paths=redact_paths, **self._options)

    # -- fields -------------------------------------------------------------

    def redact_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Return a redacted copy of `fields`, holding plain JSON values only."""
        out: dict[str, Any] = {}
        handlers = self._handlers
        clean = self._clean
        for key, value in fields.items():
            name = key if type(key) is str else str(key)
            handler = handlers.get(name)
            if handler is not None:
                handler(name, value, out)
            elif type(value) is str:
                # Inlined string fast path: most fields are short ids that
                # repeat record after record.
                out[name] = value if value in clean else self._string(value)
            else:
                out[name] = self._value(value, 0, ())
        return out

    def _arguments(self, name: str, value: Any, out: dict[str, Any]) -> None:
        data = canonical_json(value)
        if self._args_mac is not None:
            out[Field.ARGUMENTS_HMAC] = self._args_mac.hexdigest(data)
        if len(data) > self._arguments_cap:
            out[name] = _size_marker(data, len(data))
        elif isinstance(value, str):
            out[name] = self._raw_text(value, self._value_cap)
        else:
            out[name] = self._value(value, 0, self._args_nodes)

    def _raw_arguments(self, name: str, value: Any, out: dict[str, Any]) -> None:
        out[name] = self._raw_text(value if isinstance(value, str) else str(value), self._raw_cap)

    def _output(self, name: str, value: Any, out: dict[str, Any]) -> None:
        data = value.encode("utf-8", "replace") if isinstance(value, str) else canonical_json(value)
        out[name + "_bytes"] = len(data)
        out[name + "_sha256"] = hashlib.sha256(data).hexdigest()
        if not self.store_results:
            return
        if isinstance(value, str):
            out[name] = self._text(value, self._text_cap)
        else:
            out[name] = self._value(value, 0, self._result_nodes if name == Field.RESULT else ())

    def _free_text(self, name: str, value: Any, out: dict[str, Any]) -> None:
        if isinstance(value, list | tuple):
            lines = value[: self._max_items]
            out[name] = [
                self._text(v if isinstance(v, str) else str(v), self._text_cap) for v in lines
            ]
        else:
            out[name] = self._text(value if isinstance(value, str) else str(value), self._text_cap)

    # -- values -------------------------------------------------------------

    def _text(self, text: str, cap: int) -> str:
        if len(text) > _TEXT_SCAN_LIMIT:
            return f"[REDACTED:size len={len(text)}]"
        text = json_safe(redact_text(text))
        if len(text) > cap:
            return f"{text[:cap]}…[truncated, {len(text)} chars]"
        return text

    def _raw_text(self, text: str, cap: int) -> str:
        if self._raw_keys is not None and len(text) <= _TEXT_SCAN_LIMIT:
            text = self._raw_keys.sub(r'\1"[REDACTED]"', text)
        return self._text(text, cap)

    def _stored_key(self, key: str) -> str | None:
        """`key` as stored (secrets in it redacted), or None when its name marks a secret.

        Keys repeat call after call, so the answer is cached, except for a key
        that held a secret: the cache must not keep it in memory.
        """
        stored: str | None = self._key_cache.get(key, _UNSEEN)
        if stored is _UNSEEN:
            stored = key
            if _normal_key(key) in self._secret_keys:
                stored = None
            elif len(key) >= 8:
                stored = redact_text(key)
            if stored is None or stored is key:
                if len(self._key_cache) > 4096:  # keys come from models: bound the cache
                    self._key_cache.clear()
                self._key_cache[key] = stored
        return stored

    def _string(self, value: str) -> Any:
        if len(value) > self._value_cap:
            return _size_marker(value.encode("utf-8", "replace"), len(value))
        if len(value) < 8:
            return value
        redacted = redact_text(value)
        if redacted is value and len(value) <= _CLEAN_CACHE_MAX_LEN:
            # Remember only strings that held no secret: the cache must not
            # keep secrets in memory longer than the call that carried them.
            if len(self._clean) >= _CLEAN_CACHE_SIZE:
                self._clean.clear()
            self._clean.add(value)
        return redacted

    def _value(self, value: Any, depth: int, nodes: tuple[Trie, ...]) -> Any:
        kind = type(value)
        if kind is str:
            return value if value in self._clean else self._string(value)
        if kind is int or kind is bool or value is None:
            return value
        if kind is float:
            return value if math.isfinite(value) else repr(value)
        if kind is dict or kind is list or kind is tuple:
            if depth >= self._max_depth or len(value) > self._max_items:
                data = canonical_json(value)
                return _size_marker(data, len(data))
            if kind is dict:
                return self._mapping(value, depth, nodes)
            if nodes:
                return self._sequence(value, depth, nodes)
            return [self._value(item, depth + 1, nodes) for item in value]
        if isinstance(value, Mapping):
            return self._value(dict(value), depth, nodes)
        if isinstance(value, set | frozenset):
            return self._value(json_safe(value), depth, nodes)
        return self._value(json_safe(value), depth, nodes)

    def _sequence(
        self, value: list[Any] | tuple[Any, ...], depth: int, nodes: tuple[Trie, ...]
    ) -> Any:
        # An element is reached both through the list (transparent) and by
        # `*` or its index, so `args.users.pin` and `args.users.*.pin` agree.
        out: list[Any] = []
        for index, item in enumerate(value):
            found = [n[k] for n in nodes for k in ("*", str(index)) if k in n]
            if any(_NODE_END in n for n in found):
                out.append(dict(_PATH_REDACTED))
            else:
                out.append(self._value(item, depth + 1, (*nodes, *found)))
        return out

    def _mapping(self, value: dict[Any, Any], depth: int, nodes: tuple[Trie, ...]) -> Any:
        out: dict[str, Any] = {}
        keys = self._key_cache
        clean = self._clean
        for raw_key, item in value.items():
            key = raw_key if type(raw_key) is str else str(raw_key)
            child: tuple[Trie, ...] = ()
            if nodes:
                found = [n[k] for n in nodes for k in (key, "*") if k in n]
                if any(_NODE_END in n for n in found):
                    out[key] = dict(_PATH_REDACTED)
                    continue
                child = tuple(found)
            stored = keys.get(key, _UNSEEN)
            if stored is _UNSEEN:
                stored = self._stored_key(key)
            if stored is None:
                out[key] = dict(_KEY_REDACTED)
                continue
            # The scalars of a typical call, inlined; `_value` does the rest.
            kind = type(item)
            if kind is str:
                out[stored] = item if item in clean else self._string(item)
            elif kind is int or kind is bool or item is None:
                out[stored] = item
            else:
                out[stored] = self._value(item, depth + 1, child)
        return out
