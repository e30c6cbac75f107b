"""The openai backend: any OpenAI-compatible server (llama-server, llama_cpp.server,
mlx_lm.server, LM Studio, Ollama, another machine), over plain HTTP.

The Memory OS must count tokens before it sends, and the OpenAI API has no tokenizer. So the
engine asks the server for one: llama-server's `/tokenize` and llama-cpp-python's
`/extras/tokenize` give the model's own counts; a chat's framing (role markers) is estimated
per message and corrected upward from each reply's `usage.prompt_tokens`. A server with no
tokenizer endpoint is counted in UTF-8 bytes, an upper bound for byte-level tokenizers: safe,
but it uses the context less fully (a warning says so).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterator

from soulctl.engine.base import Engine
from soulctl.engine.sampling import GREEDY, NEUTRAL, Sampling
from soulctl.errors import InvalidInput, Unavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 600.0  # between two chunks of a reply: a 123B model's first token can be slow
API_KEY_ENVS = ("SOULCTL_API_KEY", "OPENAI_API_KEY")


class OpenAIEngine(Engine):
    name = "openai"
    generation = None
    supports_tools = True  # `tools` are passed on; whether the model calls them is the server's

    def __init__(self, url: str, model: str | None = None, context: int | None = None, role: str = "soul"):
        self.role = role
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"bad server URL {url!r}", hint="use e.g. http://127.0.0.1:8080/v1")
        base = url.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        self.root = self.base[: -len("/v1")]
        self.url = url
        self.api_key = next((os.environ[k] for k in API_KEY_ENVS if os.environ.get(k)), None)
        models = self._request("GET", self.base + "/models", timeout=CONNECT_TIMEOUT_S)
        served = [m.get("id") for m in models.get("data", []) if m.get("id")]
        # `model` may be a budget preset or a path; send it only when the server knows it
        if model in served or (model and not served and not _looks_like_path(model)):
            self.model = model
        elif served:
            self.model = served[0]
        else:
            raise InvalidInput(f"{url} serves no models", hint=f"name one in roles.{self.role}.model")
        self.context_length = context or 4096
        server_ctx = self._server_context()
        if server_ctx:
            self.context_length = min(self.context_length, server_ctx)
        self._tokenize = self._find_tokenizer()
        self._overhead = 8  # tokens of framing per message, raised from each reply's usage
        if self._tokenize is None:
            log.warning("%s has no tokenizer endpoint; counting UTF-8 bytes (an upper bound) for the "
                        "context", url)

    # -- HTTP ----------------------------------------------------------------------------
    def _open(self, method: str, url: str, body: dict | None, timeout: float):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code in (401, 403):
                raise Unavailable(f"{url} refused the request ({exc.code}: {detail})",
                                  hint=f"set {API_KEY_ENVS[0]} to the server's API key") from None
            raise Unavailable(f"{url} answered {exc.code}: {detail}",
                              hint=f"check the server's log, or roles.{self.role}.url in soul.yaml") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"cannot reach the model server at {self.url}: {reason}",
                              hint=f"start the server, or fix roles.{self.role}.url in soul.yaml") from None

    def _request(self, method: str, url: str, body: dict | None = None,
                 timeout: float = READ_TIMEOUT_S) -> dict:
        with self._open(method, url, body, timeout) as response:
            try:
                return json.loads(response.read() or b"{}")
            except ValueError:
                raise Unavailable(f"{url} did not answer JSON",
                                  hint=f"is roles.{self.role}.url an OpenAI-compatible /v1 endpoint?") from None

    def _probe(self, url: str, body: dict | None = None, method: str = "POST") -> dict | None:
        """An optional endpoint: its JSON, or None where the server lacks it."""
        try:
            return self._request(method, url, body, timeout=CONNECT_TIMEOUT_S)
        except Unavailable:
            return None

    def _server_context(self) -> int | None:
        props = self._probe(self.root + "/props", method="GET") or {}
        settings = props.get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") or props.get("n_ctx")
        return int(n_ctx) if n_ctx else None

    def _find_tokenizer(self):
        candidates = [
            (self.root + "/tokenize", lambda text: {"content": text, "add_special": False}, "tokens"),
            (self.root + "/extras/tokenize", lambda text: {"input": text, "model": self.model}, "tokens"),
        ]
        for url, body, key in candidates:
            answer = self._probe(url, body("hello"))
            if answer and isinstance(answer.get(key), list) and answer[key]:
                return lambda text, url=url, body=body, key=key: self._request("POST", url, body(text))[key]
        return None

    # -- the interface -------------------------------------------------------------------
    def close(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        if self._tokenize is None:
            return len(text.encode("utf-8"))
        return len(self._tokenize(text))

    def count_chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True) -> int:
        return self._content_tokens(messages) + self._overhead * (len(messages) + 1)

    def _content_tokens(self, messages: list[dict]) -> int:
        return sum(self.count_tokens(_message_text(m)) for m in messages)

    def truncate(self, text: str, limit: int) -> str:
        if self._tokenize is None:
            return text.encode("utf-8")[:limit].decode("utf-8", "ignore")
        # binary search on characters: no detokenize endpoint is common to all servers
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count_tokens(text[:mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]

    def _body(self, messages: list[dict], max_tokens: int, sampling: Sampling | None, stream: bool) -> dict:
        content = self._content_tokens(messages)  # one tokenize request per message, not two
        estimate = content + self._overhead * (len(messages) + 1)
        if estimate + max_tokens > self.context_length:
            raise InvalidInput(f"prompt of ~{estimate} tokens + {max_tokens} to generate exceeds the "
                               f"context of {self.context_length}")
        self._estimate = (estimate, content, len(messages))
        s = sampling or GREEDY
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": s.temperature, "stream": stream}
        # the rest only when set: the OpenAI names, then llama-server's extensions
        for name, value in s.as_dict().items():
            if name == "json" and value is not None:
                body["response_format"] = ({"type": "json_schema", "json_schema": {"name": "reply", "schema": value}}
                                           if value else {"type": "json_object"})
            elif name not in ("temperature", "json") and value != NEUTRAL[name]:
                body[name] = value
        return body

    def _learn(self, usage: dict | None) -> None:
        """Raise the per-message framing estimate when the server counted more than we did."""
        if not usage or not usage.get("prompt_tokens") or self._tokenize is None:
            return
        estimate, content, n = self._estimate
        if usage["prompt_tokens"] > estimate:
            self._overhead = math.ceil((usage["prompt_tokens"] - content) / (n + 1))

    def chat(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> str:
        answer = self._request("POST", self.base + "/chat/completions",
                               self._body(messages, max_tokens, sampling, False))
        self._learn(answer.get("usage"))
        try:
            return (answer["choices"][0]["message"]["content"] or "").strip()
        except (KeyError, IndexError, TypeError):
            raise Unavailable(f"{self.url} answered without a message",
                              hint="is it an OpenAI-compatible chat endpoint?") from None

    def chat_tools(self, messages: list[dict], tools: list[dict], max_tokens: int = 256,
                   sampling: Sampling | None = None, tool_choice: str | dict = "auto") -> tuple[str, list[dict]]:
        """One completion that may call tools: (content, [{id, name, arguments}])."""
        body = {**self._body(messages, max_tokens, sampling, False), "tools": tools,
                "tool_choice": tool_choice}
        answer = self._request("POST", self.base + "/chat/completions", body)
        self._learn(answer.get("usage"))
        try:
            message = answer["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise Unavailable(f"{self.url} answered without a message",
                              hint="is it an OpenAI-compatible chat endpoint?") from None
        calls = [{"id": c.get("id") or f"call_{i}", "name": (c.get("function") or {}).get("name", ""),
                  "arguments": (c.get("function") or {}).get("arguments") or "{}"}
                 for i, c in enumerate(message.get("tool_calls") or [])]
        return (message.get("content") or "").strip(), calls

    def stream(self, messages: list[dict], max_tokens: int = 256, sampling: Sampling | None = None) -> Iterator[str]:
        body = self._body(messages, max_tokens, sampling, True)
        with self._open("POST", self.base + "/chat/completions", body, READ_TIMEOUT_S) as response:
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    continue
                self._learn(chunk.get("usage"))
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece


def _message_text(message: dict) -> str:
    """What a message puts in the prompt: its content and the arguments of its tool calls."""
    calls = message.get("tool_calls") or []
    return (message.get("content") or "") + "".join(
        (c.get("function") or {}).get("name", "") + (c.get("function") or {}).get("arguments", "") for c in calls)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("generations", ".", "/", "~")) or model.endswith(".gguf")


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The server's own word on the error, on one line."""
    detail = _error_body(exc)
    first = next((ln.strip() for ln in str(detail).splitlines() if ln.strip()), "error")
    return first[:300]


def _error_body(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return exc.reason or "error"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("message") or exc.reason
    return str(error or body.get("detail") or exc.reason)


def open_backend(home, role: str, spec, ref, progress=None) -> OpenAIEngine:
    return OpenAIEngine(spec.url, model=spec.model, context=spec.context, role=role)
