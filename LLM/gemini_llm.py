"""Google Gemini through Google's ``google-genai`` SDK (``client.models.generate_content_stream``).

Install: ``pip install google-genai`` (imported when the backend is built, so importing this module
stays light). The key comes from ``api_key`` or ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``; the SDK
sends it in the ``x-goog-api-key`` header, never in the URL, so it does not end up in proxy or error
logs. The SDK's own retries are off: ours (connection failures, time-outs, 429 and 5xx) happen only
before the first token, so a reply is never said twice.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from app_modules.errors import BadInputError, StageError
from app_modules.options import Declared, option
from LLM.base import LLM, Message
from LLM.speakable import strip_think, with_instruction

KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
OFFICIAL_HOST = "generativelanguage.googleapis.com"
OFFICIAL_URL = f"https://{OFFICIAL_HOST}/v1beta"
RETRY_STATUS = (408, 429, 500, 502, 503, 504)
INSTALL = "pip install google-genai"
_VERSION = re.compile(r"v\d+(?:alpha|beta)?\d*")  # the API version that ends a base_url: v1, v1beta, v1alpha


class GeminiLLM(LLM):
    """Streams replies from a Gemini model."""

    @dataclass(frozen=True)
    class Options(Declared, label="gemini"):
        # a Gemini model id (gemini-2.5-flash, gemini-2.5-pro, ...); a visitor picks among those the
        # operator lists in visitors.choices["gemini.model"]
        model: str = option("gemini-2.5-flash", listed=True, max_len=256)
        # "" reads GEMINI_API_KEY, then GOOGLE_API_KEY, which go only to Google's own host over https
        api_key: str = option("", secret=True)
        # the API root, ending in its version; change only for a proxy or a test server (which then gets
        # api_key, never a key from the environment)
        base_url: str = option(OFFICIAL_URL, max_len=2048)
        temperature: float = option(0.7, min=0, max=2, step=0.05, visitor=True)
        # the longest reply, in tokens (maxOutputTokens)
        max_tokens: int = option(512, min=1, max=65536, visitor=True)
        # seconds to wait for the server (to connect, and between streamed pieces)
        timeout: float = option(60.0, min=0.1, max=3600)
        # extra tries after a failed connection, time-out, 429 or 5xx, before the reply starts
        retries: int = option(2, min=0, max=10)
        # tokens of history sent; the models take far more, but every token is paid for and slows the reply
        context_tokens: int = option(32768, min=2, max=1 << 22)
        # ask for short plain sentences fit to be spoken (no markdown, no emoji)
        speakable: bool = option(False, visitor=True)

    def __init__(self, options: Options | None = None, checkpoints: Any = None):
        o = options or self.Options()
        if not o.base_url.startswith(("http://", "https://")):
            raise BadInputError(f"gemini.base_url must start with http:// or https://, got {o.base_url!r}")
        if o.context_tokens <= o.max_tokens:
            raise BadInputError(f"gemini.max_tokens ({o.max_tokens}) must be below gemini.context_tokens "
                                f"({o.context_tokens})")
        self.options = o
        self.base_url = o.base_url.rstrip("/")
        self.context_tokens = o.context_tokens
        self.reply_tokens = o.max_tokens
        # a key from the environment is Google's: it goes to Google's host only, never to another base_url
        self._env_key = next((os.environ[k].strip() for k in KEY_ENVS if os.environ.get(k)), "")
        self._key = o.api_key.strip() or (self._env_key if is_official(self.base_url) else "")
        self._sdk = _sdk()
        self._client: Any = None  # the genai.Client, made on the first reply (it needs the key)
        self.retry_delay = 0.5  # seconds before the first retry; doubles each time

    def __repr__(self) -> str:  # never the key
        return f"GeminiLLM(model={self.options.model!r})"

    def request(self, messages: list[Message]) -> tuple[list[Any], Any]:
        """The SDK's ``contents`` and ``GenerateContentConfig`` for ``messages``: the persona goes to
        ``system_instruction``, and consecutive messages of one role become one turn."""
        types = self._sdk.types
        msgs = with_instruction(messages) if self.options.speakable else messages
        system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
        contents: list[Any] = []
        for m in msgs:
            if m["role"] == "system":
                continue
            role = "model" if m["role"] == "assistant" else "user"
            if contents and contents[-1].role == role:  # Gemini wants the roles to alternate
                contents[-1].parts.append(types.Part(text=m["content"]))
            else:
                contents.append(types.Content(role=role, parts=[types.Part(text=m["content"])]))
        config = types.GenerateContentConfig(
            system_instruction=types.Content(parts=[types.Part(text=system)]) if system else None,
            temperature=self.options.temperature, max_output_tokens=self.options.max_tokens)
        return contents, config

    def stream(self, messages: list[Message]) -> Iterator[str]:
        if not self._key:
            if self._env_key:
                raise StageError("llm", f"no API key for {self.base_url}: keys from GEMINI_API_KEY / GOOGLE_API_KEY "
                                        f"go only to {OFFICIAL_HOST} over https; set gemini.api_key in "
                                        "settings.yaml for another server")
            raise StageError("llm", "no Gemini API key: set the environment variable GEMINI_API_KEY "
                                    "or gemini.api_key in settings.yaml")
        sdk = self._sdk
        client = self._get_client()
        contents, config = self.request(messages)
        tries = self.options.retries + 1
        for attempt in range(tries):
            last = attempt == tries - 1
            started = False

            def pieces() -> Iterator[str]:
                nonlocal started
                for chunk in client.models.generate_content_stream(
                        model=self.options.model, contents=contents, config=config):
                    for text in _texts(chunk):
                        started = True
                        yield text

            try:
                yield from strip_think(pieces())
                return
            except sdk.errors.APIError as e:
                if e.code in RETRY_STATUS and not started and not last:
                    self._wait(attempt, getattr(e, "response", None))
                    continue
                raise StageError("llm", self._scrub(self._status_message(e, attempt + 1))) from e
            except sdk.timeout_errors as e:
                if not started and not last:
                    continue
                raise StageError("llm", f"no answer from Gemini within {self.options.timeout:g} s "
                                        f"({_tries(attempt + 1)}): raise gemini.timeout or retry later") from e
            except sdk.transport_errors as e:
                if started:
                    raise StageError("llm", "the connection to Gemini broke off in the middle of the reply; "
                                            "try again") from e
                if not last:
                    self._wait(attempt, None)
                    continue
                raise StageError("llm", f"cannot reach Gemini at {self.base_url} ({type(e).__name__}): check "
                                        f"the network or proxy, and gemini.base_url") from e
            except ValueError as e:  # the SDK's UnknownApiResponseError, or a chunk it cannot validate
                raise StageError("llm", f"{self.base_url} sent something that is not a Gemini stream; "
                                        f"is gemini.base_url right?") from e

    def _get_client(self) -> Any:
        if self._client is None:
            types = self._sdk.types
            root, _, last = self.base_url.rpartition("/")
            # the SDK puts api_version between base_url and models/...; "" leaves it out
            root, version = (root, last) if _VERSION.fullmatch(last) and "//" in root else (self.base_url, "")
            self._client = self._sdk.genai.Client(
                api_key=self._key, vertexai=False,  # explicit, so GOOGLE_GENAI_USE_VERTEXAI cannot redirect it
                http_options=types.HttpOptions(
                    # no retry_options: the SDK does not retry; stream() does, before the first token
                    base_url=root, api_version=version, timeout=max(1, round(self.options.timeout * 1000))))
        return self._client

    def _wait(self, attempt: int, response: Any) -> None:
        delay = self.retry_delay * 2 ** attempt
        headers = getattr(response, "headers", None) or {}
        if headers.get("retry-after-ms"):
            delay = float(headers["retry-after-ms"]) / 1000
        elif (headers.get("retry-after") or "").isdigit():
            delay = float(headers["retry-after"])
        time.sleep(min(delay, 30.0))

    def _status_message(self, e: Any, tries: int) -> str:
        detail = str(e.message or e.details or e.status or "")[:200]
        s = e.code
        if s in (400, 401, 403) and ("key" in detail.lower() or s != 400):
            return f"Gemini refused the API key (HTTP {s}: {detail}): check GEMINI_API_KEY or gemini.api_key"
        if s == 404:
            return f"Gemini has no model {self.options.model!r} (HTTP 404: {detail}): set gemini.model"
        if s == 429:
            return f"Gemini says too many requests or quota used up (HTTP 429: {detail}); wait a little and retry"
        return f"Gemini answered HTTP {s} ({_tries(tries)}): {detail}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def is_official(base_url: str) -> bool:
    """Whether ``base_url`` is Google's Gemini API itself: that exact host, over https."""
    try:
        parsed = urlparse(base_url)
        return (parsed.scheme == "https" and (parsed.hostname or "").lower().rstrip(".") == OFFICIAL_HOST
                and parsed.port in (None, 443))
    except ValueError:
        return False


class _SDK:
    """google.genai and the exceptions of the HTTP library under it (httpx, or httpx2 where installed)."""

    def __init__(self) -> None:
        try:
            from google import genai
            from google.genai import errors, types
        except ImportError as e:  # the registry checks first; this names the fix for direct use
            raise ImportError(f"the gemini backend needs Google's SDK: {INSTALL}") from e
        self.genai, self.errors, self.types = genai, errors, types
        libs = []
        for name in ("httpx", "httpx2"):
            try:
                libs.append(__import__(name))
            except ImportError:
                pass
        self.timeout_errors = tuple(lib.TimeoutException for lib in libs)
        self.transport_errors = tuple(lib.TransportError for lib in libs)


_loaded: _SDK | None = None


def _sdk() -> _SDK:
    global _loaded
    if _loaded is None:
        _loaded = _SDK()
    return _loaded


def _tries(n: int) -> str:
    return f"{n} {'try' if n == 1 else 'tries'}"


def _texts(chunk: Any) -> Iterator[str]:
    """The text parts of one streamed ``GenerateContentResponse``; a blocked prompt is an error."""
    block = chunk.prompt_feedback.block_reason if chunk.prompt_feedback else None
    if block:
        reason = getattr(block, "value", block)
        raise StageError("llm", f"Gemini refused to answer this prompt ({reason}); rephrase it")
    for cand in chunk.candidates or []:
        for part in (cand.content.parts if cand.content else None) or []:
            if part.text and not part.thought:  # thought summaries are not for speaking
                yield part.text
