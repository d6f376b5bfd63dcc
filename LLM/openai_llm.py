"""Any OpenAI-compatible chat server: ChatGPT, Qwen on DashScope, DeepSeek, Ollama, vLLM, llama.cpp.

Install: ``pip install openai``. Choose the server with ``base_url`` or a ``preset`` (see
``LLM.presets``); the API key comes from ``api_key`` or the preset's environment variable and is
never logged or shown. Replies stream; time-outs and retries are the ``openai`` client's (retries
happen only before the first token, so a reply is never said twice).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app_modules.errors import BadInputError, StageError
from app_modules.options import Declared, option
from LLM import presets
from LLM.base import LLM, Message
from LLM.speakable import strip_think, with_instruction

try:
    import openai
except ImportError as e:  # the registry checks first; this names the fix for direct imports
    raise ImportError("the openai backend needs the openai package: pip install openai") from e

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"
DEFAULT_MODEL = "qwen2.5:1.5b"
# What local servers get as a key: the client insists on one, and they ignore it.
NO_KEY = "not-needed"


class OpenAILLM(LLM):
    """Streams chat completions from an OpenAI-compatible ``/v1`` endpoint."""

    @dataclass(frozen=True)
    class Options(Declared, label="openai"):
        # the server's OpenAI-compatible root, ending in /v1
        base_url: str = option(DEFAULT_BASE_URL, max_len=2048)
        # the model name as the server knows it (Ollama: qwen2.5:1.5b; DeepSeek: deepseek-chat); a visitor
        # picks among those the operator lists in visitors.choices["openai.model"]
        model: str = option(DEFAULT_MODEL, listed=True, max_len=256)
        # "" reads the preset's environment variable (OPENAI_API_KEY, DASHSCOPE_API_KEY, DEEPSEEK_API_KEY),
        # which is only ever sent to that service's own host, over https
        api_key: str = option("", secret=True)
        # openai | dashscope | deepseek | ollama | vllm | llamacpp: fills base_url and model left at defaults
        preset: str = option("", choices=("", *presets.PRESETS))
        # 0 is (nearly) deterministic; higher is more varied
        temperature: float = option(0.7, min=0, max=2, step=0.05, visitor=True)
        # the longest reply, in tokens; also what the history leaves free for the reply
        max_tokens: int = option(512, min=1, max=32768, visitor=True)
        # seconds to wait for the server (to connect, and between streamed pieces)
        timeout: float = option(60.0, min=0.1, max=3600)
        # extra tries after a failed connection, time-out, 429 or 5xx, before the reply starts
        retries: int = option(2, min=0, max=10)
        # how many tokens of prompt and reply the model takes; history is trimmed to fit
        context_tokens: int = option(8192, min=2, max=1 << 22)
        # ask for short plain sentences fit to be spoken (no markdown, no emoji)
        speakable: bool = option(False, visitor=True)

    def __init__(self, options: Options | None = None, checkpoints: Any = None):
        o = options or self.Options()
        _verify(o)
        preset = presets.get(o.preset) if o.preset else None
        self.base_url = (preset.base_url if preset and o.base_url == DEFAULT_BASE_URL else o.base_url).rstrip("/")
        self.model = preset.model if preset and o.model == DEFAULT_MODEL else o.model
        # the key of the service base_url points at, never another service's
        self.preset = presets.detect(self.base_url) or (preset if preset and presets.is_local(self.base_url) else None)
        self._key = o.api_key.strip() or presets.api_key(self.preset)
        self.options = o
        self.context_tokens = o.context_tokens
        self.reply_tokens = o.max_tokens
        self._client = openai.OpenAI(base_url=self.base_url, api_key=self._key or NO_KEY,
                                     timeout=o.timeout, max_retries=o.retries)

    def __repr__(self) -> str:  # never the key
        return f"OpenAILLM(base_url={self.base_url!r}, model={self.model!r})"

    def stream(self, messages: list[Message]) -> Iterator[str]:
        self._check_key()
        msgs = with_instruction(messages) if self.options.speakable else [dict(m) for m in messages]
        # OpenAI's own newer models take max_completion_tokens; compatible servers know max_tokens.
        limit = "max_completion_tokens" if self.preset and self.preset.name == "openai" else "max_tokens"
        started = False

        def pieces(response) -> Iterator[str]:
            nonlocal started
            for chunk in response:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    started = True
                    yield piece

        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=msgs, stream=True, temperature=self.options.temperature,
                **{limit: self.options.max_tokens})
            with response:  # closes the connection when the consumer stops early (barge-in)
                yield from strip_think(pieces(response))
        except openai.APIError as e:
            raise StageError("llm", self._scrub(self._explain(e, started))) from e
        except ValueError as e:  # a body that is not JSON: not an OpenAI-compatible endpoint
            raise StageError("llm", f"{self.base_url} sent something that is not an OpenAI chat-completions "
                                    f"stream ({type(e).__name__}); is openai.base_url an OpenAI-compatible "
                                    f"/v1 endpoint?") from e

    def list_models(self) -> list[str]:
        """The model names the server offers (for a settings drop-down)."""
        try:
            return sorted(m.id for m in self._client.models.list())
        except openai.APIError as e:
            raise StageError("llm", self._scrub(self._explain(e, False))) from e

    # -- errors a user can act on
    def _check_key(self) -> None:
        if self._key or not self.preset or not self.preset.key_env or presets.is_local(self.base_url):
            return
        raise StageError("llm", f"no API key for {self.preset.name}: set the environment variable "
                                f"{self.preset.key_env} or openai.api_key in settings.yaml")

    def _explain(self, e: openai.APIError, started: bool) -> str:
        url, n = self.base_url, self.options.retries + 1
        tries = f"{n} {'try' if n == 1 else 'tries'}"
        if isinstance(e, openai.APITimeoutError):
            return (f"no answer from {url} within {self.options.timeout:g} s ({tries}): the server may be "
                    f"busy or still loading the model; raise openai.timeout or choose a smaller model")
        if isinstance(e, openai.APIConnectionError):
            if started:
                return f"the connection to {url} broke off in the middle of the reply; try again"
            if presets.is_local(url):
                hint = self.preset.start_hint if self.preset else "start the server"
                if url == DEFAULT_BASE_URL:
                    hint = "start Ollama (`ollama serve`)"
                return (f"no LLM server answers at {url}: {hint} or set openai.base_url "
                        f"(or openai.preset: {', '.join(presets.PRESETS)})")
            return f"cannot reach {url} ({tries}): check the network or proxy, and openai.base_url"
        if isinstance(e, openai.APIStatusError):
            status, detail = e.status_code, _short(e)
            if status in (401, 403):
                env = self.preset.key_env if self.preset else ""
                where = f"the environment variable {env} or " if env else ""
                return f"{url} refused the API key (HTTP {status}: {detail}): check {where}openai.api_key"
            if status == 404:
                pull = f"`ollama pull {self.model}` or " if self.preset and self.preset.name == "ollama" else ""
                return f"{url} has no model {self.model!r} (HTTP 404: {detail}): {pull}set openai.model"
            if status == 429:
                return f"{url} says too many requests or quota used up (HTTP 429: {detail}); wait a little and retry"
            if status == 400 and ("context" in detail.lower() or "too long" in detail.lower()):
                return f"the conversation is too long for {self.model} ({detail}): lower openai.context_tokens"
            return f"{url} answered HTTP {status} ({tries}): {detail}"
        return f"{url}: {e}"

    def _scrub(self, text: str) -> str:
        """Servers sometimes echo the key they refused; it must not reach a chat or a log."""
        return text.replace(self._key, "***") if self._key else text


def _short(e: openai.APIStatusError, limit: int = 200) -> str:
    """The server's own error message, cut to a line."""
    msg: Any = None
    if isinstance(e.body, dict):
        err = e.body.get("error", e.body)  # {"error": {"message": ...}} or the error object itself
        msg = err.get("message") if isinstance(err, dict) else err
    msg = str(msg or e.message)
    return msg if len(msg) <= limit else msg[:limit] + "..."


def _verify(o: OpenAILLM.Options) -> None:
    """What one field's declaration cannot say, checked before any work."""
    if not o.base_url.startswith(("http://", "https://")):
        raise BadInputError(f"openai.base_url must start with http:// or https://, got {o.base_url!r}")
    if o.context_tokens <= o.max_tokens:
        raise BadInputError(f"openai.max_tokens ({o.max_tokens}) must be below openai.context_tokens "
                            f"({o.context_tokens})")
