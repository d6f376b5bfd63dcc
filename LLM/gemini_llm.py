"""Google Gemini through its REST API (``streamGenerateContent`` with server-sent events) over httpx.

Install: ``pip install httpx`` (already an app dependency; the REST API needs no Google SDK). The key
comes from ``api_key`` or ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY`` and travels in the
``x-goog-api-key`` header, never in the URL, so it does not end up in proxy or error logs. Retries
(connection failures, time-outs, 429 and 5xx) happen only before the first token.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from app_modules.errors import StageError, TalkerError
from LLM.base import LLM, Message
from LLM.speakable import ThinkFilter, with_instruction

try:
    import httpx
except ImportError as e:
    raise ImportError("the gemini backend needs httpx: pip install httpx") from e

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


class GeminiLLM(LLM):
    """Streams replies from a Gemini model."""

    @dataclass(frozen=True)
    class Options:
        # a Gemini model id (gemini-2.5-flash, gemini-2.5-pro, ...)
        model: str = "gemini-2.5-flash"
        # "" reads GEMINI_API_KEY, then GOOGLE_API_KEY
        api_key: str = field(default="", repr=False)
        # the API root; change only for a proxy or a test server
        base_url: str = "https://generativelanguage.googleapis.com/v1beta"
        temperature: float = 0.7
        # the longest reply, in tokens (maxOutputTokens)
        max_tokens: int = 512
        # seconds to wait for the server (to connect, and between streamed pieces)
        timeout: float = 60.0
        # extra tries after a failed connection, time-out, 429 or 5xx, before the reply starts
        retries: int = 2
        # tokens of history sent; the models take far more, but every token is paid for and slows the reply
        context_tokens: int = 32768
        # ask for short plain sentences fit to be spoken (no markdown, no emoji)
        speakable: bool = False

    def __init__(self, options: Options | None = None, checkpoints: Any = None):
        o = options or self.Options()
        if not o.base_url.startswith(("http://", "https://")):
            raise TalkerError(f"gemini.base_url must start with http:// or https://, got {o.base_url!r}")
        if o.max_tokens < 1 or o.context_tokens <= o.max_tokens or o.timeout <= 0 or o.retries < 0:
            raise TalkerError("gemini options out of range: 1 <= max_tokens < context_tokens, timeout > 0, "
                              f"retries >= 0 (got {o.max_tokens}, {o.context_tokens}, {o.timeout}, {o.retries})")
        self.options = o
        self.base_url = o.base_url.rstrip("/")
        self.context_tokens = o.context_tokens
        self.reply_tokens = o.max_tokens
        self._key = o.api_key.strip() or next((os.environ[k].strip() for k in KEY_ENVS if os.environ.get(k)), "")
        self._client = httpx.Client(timeout=o.timeout)
        self.retry_delay = 0.5  # seconds before the first retry; doubles each time

    def __repr__(self) -> str:  # never the key
        return f"GeminiLLM(model={self.options.model!r})"

    def request_body(self, messages: list[Message]) -> dict[str, Any]:
        """The ``generateContent`` JSON for ``messages``: the persona goes to ``systemInstruction``."""
        msgs = with_instruction(messages) if self.options.speakable else messages
        system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
        contents: list[dict[str, Any]] = []
        for m in msgs:
            if m["role"] == "system":
                continue
            role = "model" if m["role"] == "assistant" else "user"
            if contents and contents[-1]["role"] == role:  # Gemini wants the roles to alternate
                contents[-1]["parts"].append({"text": m["content"]})
            else:
                contents.append({"role": role, "parts": [{"text": m["content"]}]})
        body: dict[str, Any] = {"contents": contents, "generationConfig": {
            "temperature": self.options.temperature, "maxOutputTokens": self.options.max_tokens}}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        return body

    def stream(self, messages: list[Message]) -> Iterator[str]:
        if not self._key:
            raise StageError("llm", "no Gemini API key: set the environment variable GEMINI_API_KEY "
                                    "or gemini.api_key in settings.yaml")
        url = f"{self.base_url}/models/{self.options.model}:streamGenerateContent"
        body = self.request_body(messages)
        headers = {"x-goog-api-key": self._key}
        tries = self.options.retries + 1
        for attempt in range(tries):
            last = attempt == tries - 1
            started = False
            try:
                with self._client.stream("POST", url, params={"alt": "sse"}, json=body, headers=headers) as r:
                    if r.status_code >= 400:
                        r.read()
                        if r.status_code in RETRY_STATUS and not last:
                            self._wait(attempt, r)
                            continue
                        raise StageError("llm", self._scrub(self._status_message(r, attempt + 1)))
                    think = ThinkFilter()
                    for data in _events(r):
                        for text in _texts(data):
                            started = True
                            piece = think.feed(text)
                            if piece:
                                yield piece
                    rest = think.flush()
                    if rest:
                        yield rest
                return
            except httpx.TimeoutException as e:
                if not started and not last:
                    continue
                raise StageError("llm", f"no answer from Gemini within {self.options.timeout:g} s "
                                        f"({_tries(attempt + 1)}): raise gemini.timeout or retry later") from e
            except httpx.TransportError as e:
                if started:
                    raise StageError("llm", "the connection to Gemini broke off in the middle of the reply; "
                                            "try again") from e
                if not last:
                    self._wait(attempt, None)
                    continue
                raise StageError("llm", f"cannot reach Gemini at {self.base_url} ({type(e).__name__}): check "
                                        f"the network or proxy, and gemini.base_url") from e
            except ValueError as e:  # json: not a Gemini stream
                raise StageError("llm", f"{self.base_url} sent something that is not a Gemini stream; "
                                        f"is gemini.base_url right?") from e

    def _wait(self, attempt: int, response: httpx.Response | None) -> None:
        delay = self.retry_delay * 2 ** attempt
        if response is not None and response.headers.get("retry-after-ms"):
            delay = float(response.headers["retry-after-ms"]) / 1000
        elif response is not None and (response.headers.get("retry-after") or "").isdigit():
            delay = float(response.headers["retry-after"])
        time.sleep(min(delay, 30.0))

    def _status_message(self, r: httpx.Response, tries: int) -> str:
        try:
            err = r.json().get("error", {})
            detail = str(err.get("message") or err)[:200]
        except ValueError:
            detail = r.text[:200]
        s = r.status_code
        if s in (400, 401, 403) and ("key" in detail.lower() or s != 400):
            return f"Gemini refused the API key (HTTP {s}: {detail}): check GEMINI_API_KEY or gemini.api_key"
        if s == 404:
            return f"Gemini has no model {self.options.model!r} (HTTP 404: {detail}): set gemini.model"
        if s == 429:
            return f"Gemini says too many requests or quota used up (HTTP 429: {detail}); wait a little and retry"
        return f"Gemini answered HTTP {s} ({_tries(tries)}): {detail}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _tries(n: int) -> str:
    return f"{n} {'try' if n == 1 else 'tries'}"


def _events(r: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent-events body (``data: {...}`` lines)."""
    for line in r.iter_lines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload and payload != "[DONE]":
                yield json.loads(payload)


def _texts(data: dict[str, Any]) -> Iterator[str]:
    """The text parts of one streamed ``GenerateContentResponse``; a blocked prompt is an error."""
    block = (data.get("promptFeedback") or {}).get("blockReason")
    if block:
        raise StageError("llm", f"Gemini refused to answer this prompt ({block}); rephrase it")
    for cand in data.get("candidates") or []:
        for part in (cand.get("content") or {}).get("parts") or []:
            if part.get("text") and not part.get("thought"):  # thought summaries are not for speaking
                yield part["text"]
