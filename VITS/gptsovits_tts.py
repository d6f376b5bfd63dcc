"""GPT-SoVITS v2 voice cloning as a Talker TTS backend.

Per voice (once, then cached): the reference clip -> HuBERT features -> semantic prompt codes; its
transcript -> phonemes + BERT features; its 32 kHz spectrogram -> timbre. Per sentence: phonemes
(+ BERT for Chinese) -> the T2S GPT continues the prompt's semantic codes -> SoVITS decodes them with
the sentence's phonemes and the reference timbre -> 32 kHz audio. Same pipeline as the original webui.

The voice is chosen per call (``synthesize(text, voice=...)``), so one instance serves every voice:
HuBERT, RoBERTa and the default GPT and SoVITS load once, in the constructor. What a voice adds is
cached per voice in bounded LRUs: its prepared prompt (a few MB) and, for a voice that brings the
weights GPT-SoVITS fine-tuning writes (``gpt.ckpt``, ``sovits.pth``), those networks.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app_modules.checkpoints import CheckpointManager
from app_modules.devices import torch_device
from app_modules.errors import (
    BackendUnavailableError,
    BadInputError,
    MissingWeightsError,
    StageError,
    TalkerError,
)
from app_modules.options import Declared, option
from app_modules.types import Audio, WordTiming
from TTS.base import TTS, Speech
from VITS.gptsovits.loaders import load_sovits, load_t2s
from VITS.gptsovits.sovits import SynthesizerTrn
from VITS.gptsovits.spectrogram import reference_spectrogram
from VITS.gptsovits.t2s import Text2SemanticDecoder
from VITS.gptsovits.text.frontend import phonemize
from VITS.voices import Voice, VoiceLibrary, check_clip, file_identity, load_clip

T2S_FILE = "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
SOVITS_FILE = "s2G2333k.pth"
HUBERT_DIR = "chinese-hubert-base"
BERT_DIR = "chinese-roberta-wwm-ext-large"
SENTENCE_END = set("，。？！,.?!~:：—…")
_CJK = re.compile(r"[\u4e00-\u9fff]")

VoiceRef = Voice | str | None  # a voice, a library name, or None for the backend's default voice


@dataclass(frozen=True)
class _Models:
    """A GPT + SoVITS pair, and the GPT's early stop (50 codes a second of its ``max_sec``)."""

    t2s: Text2SemanticDecoder
    sovits: SynthesizerTrn
    early_stop_num: int


@dataclass(frozen=True)
class _VoiceState:
    """Everything about one voice that does not depend on the sentence."""

    voice: Voice
    models: _Models
    prompt_codes: torch.Tensor  # (1, P)
    phones: list[int]
    bert: torch.Tensor  # (1024, len(phones))
    refer: torch.Tensor  # (1, 1025, frames)


class _LRU:
    """A bounded cache: ``get(key, make)`` returns the cached value or makes, keeps and returns it."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


def _resample(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return x.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr, target)
    return resample_poly(x, target // g, sr // g).astype(np.float32)


def _language_runs(text: str, language: str) -> list[tuple[str, str]]:
    """Split mixed text into (run, language) pieces: CJK runs are Chinese, Latin runs English."""
    if language in ("zh", "en"):
        return [(text, language)]
    if language != "auto":
        raise BadInputError(f"unsupported language {language!r}; choose auto, zh or en")
    runs: list[list[str]] = []
    for ch in text:
        lang = "zh" if _CJK.match(ch) else ("en" if ch.isascii() and ch.isalpha() else None)
        if runs and (lang is None or lang == runs[-1][1]):
            runs[-1][0] += ch  # marks and spaces stay with the run they follow
        elif lang is None:
            runs.append([ch, "zh" if _CJK.search(text) else "en"])
        else:
            runs.append([ch, lang])
    return [(t, lang) for t, lang in runs if t.strip()]


class GPTSoVITSTTS(TTS):
    """Speaks in the voice of a reference clip, zero-shot or with the voice's fine-tuned weights."""

    @dataclass(frozen=True)
    class Options(Declared, label="gpt-sovits"):
        """Settings; each field can be set in settings.yaml or on the command line."""

        t2s_checkpoint: str = ""  # path to the GPT .ckpt; empty = the catalog file under checkpoints/gpt-sovits
        sovits_checkpoint: str = ""  # path to the SoVITS .pth; empty = the catalog file
        voice: str = option("default", visitor=True, max_len=64)  # a name in the voice library (VITS.voices)
        top_k: int = option(15, min=1, max=100, visitor=True)
        top_p: float = option(1.0, min=0.01, max=1, step=0.01, visitor=True)
        temperature: float = option(1.0, min=0.01, max=2, step=0.05, visitor=True)
        # the original's default; 1.0 turns it off
        repetition_penalty: float = option(1.35, min=1, max=3, step=0.05, visitor=True)
        # each sentence is sampled from this seed, so a sentence always sounds the same
        seed: int = option(0, min=0, max=2**31 - 1, visitor=True)
        device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1"
        # language of the text to speak: "auto", "zh" or "en"
        language: str = option("auto", choices=("auto", "zh", "en"), visitor=True)
        speed: float = option(1.0, min=0.25, max=4, step=0.05, visitor=True)
        noise_scale: float = option(0.5, min=0, max=2, step=0.05, visitor=True)  # SoVITS prior sampling temperature
        # cap on one sentence's length; 0 = the checkpoint's max_sec (54 s)
        max_seconds: float = option(0.0, min=0, max=600)
        # chinese-hubert-base and chinese-roberta-wwm-ext-large: a folder (or hub id); "" = the copies in
        # checkpoints/gpt-sovits (`python -m app_modules.cli download gpt-sovits` fetches them)
        hubert: str = ""
        bert: str = ""
        voices_dir: str = ""  # voice library folder; empty = TALKER_VOICES or checkpoints/voices
        allow_pickle: bool = False  # load checkpoints with torch.load(weights_only=False) (trusted files only)
        threads: int = option(0, min=0, max=256)  # torch CPU threads (process-wide); 0 leaves torch's default
        # prepared voices kept (prompt codes, spectrogram, BERT: a few MB each)
        voice_cache: int = option(8, min=1, max=256)
        # fine-tuned GPT / SoVITS networks kept of each kind (about 150 MB a pair)
        finetuned_cache: int = option(2, min=1, max=16)

    def __init__(self, options: GPTSoVITSTTS.Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = o = options or GPTSoVITSTTS.Options()
        self._verify_options()
        if o.threads:
            torch.set_num_threads(o.threads)
        self.device = torch_device(o.device)
        ckpt = checkpoints or CheckpointManager()
        t2s_path = ckpt.require("gpt-sovits", T2S_FILE, o.t2s_checkpoint or None)
        sovits_path = ckpt.require("gpt-sovits", SOVITS_FILE, o.sovits_checkpoint or None)
        t2s, early_stop = self._load_t2s(t2s_path)
        self.models = _Models(t2s, self._load_sovits(sovits_path), early_stop)  # shared by every voice
        self.hubert = self._load_hf("hubert", o.hubert or str(ckpt.folder("gpt-sovits", f"{HUBERT_DIR}/")))
        self.bert, self.tokenizer = self._load_hf("bert", o.bert or str(ckpt.folder("gpt-sovits", f"{BERT_DIR}/")))
        self.voices = VoiceLibrary(o.voices_dir or None)
        self._voice_cache = _LRU(o.voice_cache)
        self._t2s_cache = _LRU(o.finetuned_cache)
        self._sovits_cache = _LRU(o.finetuned_cache)
        self._lock = threading.Lock()  # one synthesis at a time: the models are shared

    @property
    def sample_rate(self) -> int:
        return self.models.sovits.config.sampling_rate

    def _verify_options(self) -> None:
        o = self.options
        if o.top_k < 1:
            raise BadInputError(f"top_k must be at least 1 (got {o.top_k})")
        if not 0 < o.top_p <= 1:
            raise BadInputError(f"top_p must be in (0, 1] (got {o.top_p})")
        if o.temperature <= 0:
            raise BadInputError(f"temperature must be positive (got {o.temperature})")
        if not 0.25 <= o.speed <= 4:
            raise BadInputError(f"speed must be between 0.25 and 4 (got {o.speed})")
        if o.language not in ("auto", "zh", "en"):
            raise BadInputError(f"unsupported language {o.language!r}; choose auto, zh or en")
        if o.voice_cache < 1 or o.finetuned_cache < 1:
            raise BadInputError("voice_cache and finetuned_cache must be at least 1")

    # -- loading ---------------------------------------------------------------------------------------
    def _load_t2s(self, path: Path) -> tuple[Text2SemanticDecoder, int]:
        model, config = load_t2s(path, self.options.allow_pickle)
        data = config.get("data", {}) if isinstance(config, dict) else {}
        max_sec = self.options.max_seconds or float(data.get("max_sec", 54))
        # the webui's early stop is hz * max_sec with hz = 50, whatever the code rate
        return model.to(self.device), int(50 * max_sec)

    def _load_sovits(self, path: Path) -> SynthesizerTrn:
        model, _ = load_sovits(path, self.options.allow_pickle)
        return model.to(self.device)

    def _load_hf(self, kind: str, name: str):
        try:
            import transformers
        except ImportError as e:
            raise BackendUnavailableError("GPT-SoVITS needs transformers: `pip install transformers`") from e
        local = {"local_files_only": True} if Path(name).is_dir() else {}  # a folder never goes to the hub
        try:
            if kind == "hubert":
                return transformers.HubertModel.from_pretrained(name, **local).eval().to(self.device)
            model = transformers.AutoModel.from_pretrained(name, **local).eval().to(self.device)
            return model, transformers.AutoTokenizer.from_pretrained(name, **local)
        except OSError as e:
            what = HUBERT_DIR if kind == "hubert" else BERT_DIR
            raise MissingWeightsError(
                f"cannot load {what} from {name!r} ({e}). Fetch it with `python -m app_modules.cli download "
                f"gpt-sovits`, or set the gpt-sovits option `{kind}` to a local folder holding the model") from e

    def _models_for(self, voice: Voice) -> _Models:
        """The shared pair, with the voice's own fine-tuned GPT and/or SoVITS in place of the defaults."""
        if voice.gpt_weights is None and voice.sovits_weights is None:
            return self.models
        t2s, stop = self.models.t2s, self.models.early_stop_num
        if voice.gpt_weights is not None:
            t2s, stop = self._t2s_cache.get(file_identity(voice.gpt_weights), lambda: self._load_t2s(voice.gpt_weights))
        sovits = self.models.sovits
        if voice.sovits_weights is not None:
            sovits = self._sovits_cache.get(file_identity(voice.sovits_weights),
                                            lambda: self._load_sovits(voice.sovits_weights))
        return _Models(t2s, sovits, stop)

    # -- text ------------------------------------------------------------------------------------------
    def _bert_features(self, norm_text: str, word2ph: list[int]) -> torch.Tensor:
        """Chinese BERT's third-from-last layer, one row per character, repeated per phone -> (1024, n)."""
        inputs = self.tokenizer(norm_text, return_tensors="pt").to(self.device)
        hidden = self.bert(**inputs, output_hidden_states=True).hidden_states[-3][0, 1:-1]
        if hidden.size(0) != len(word2ph):
            raise StageError("tts", f"BERT split {norm_text!r} into {hidden.size(0)} tokens, expected "
                                    f"{len(word2ph)} characters; the tokenizer does not fit the model")
        reps = torch.tensor(word2ph, device=hidden.device)
        return torch.repeat_interleave(hidden, reps, dim=0).t().float()

    def _text(self, text: str, language: str) -> tuple[list[int], torch.Tensor]:
        """Phoneme ids and BERT features for a sentence (English parts get zero features, as upstream)."""
        ids: list[int] = []
        feats = []
        for run, lang in _language_runs(text, language):
            p = phonemize(run, lang)
            ids += p.ids
            if lang == "zh":
                feats.append(self._bert_features(p.norm_text, p.word2ph))
            else:
                feats.append(torch.zeros(1024, len(p.ids), device=self.device))
        if not ids:
            raise BadInputError(f"nothing to say in {text!r}")
        return ids, torch.cat(feats, dim=1)

    # -- voice -----------------------------------------------------------------------------------------
    def resolve(self, voice: VoiceRef) -> Voice:
        """The ``Voice`` a call means: itself, the library voice of that name, or the default voice."""
        if isinstance(voice, Voice):
            return voice
        return self.voices.get(voice or self.options.voice)

    def prepare(self, voice: VoiceRef = None) -> None:
        """Prepare a voice now (e.g. when it is picked), so its first sentence does not wait for it."""
        v = self.resolve(voice)
        with self._lock, torch.no_grad():
            self._state(v)

    def _state(self, voice: Voice) -> _VoiceState:
        return self._voice_cache.get(voice.cache_key(), lambda: self._prepare_voice(voice))

    def _prepare_voice(self, voice: Voice) -> _VoiceState:
        models = self._models_for(voice)
        samples, sr = load_clip(voice.wav)
        check_clip(samples, sr)
        wav16 = _resample(samples, sr, 16000)
        wav16 = np.concatenate([wav16, np.zeros(int(0.3 * 16000), np.float32)])  # the webui pads 0.3 s
        ssl = self.hubert(torch.from_numpy(wav16)[None].to(self.device)).last_hidden_state.transpose(1, 2)
        codes = models.sovits.extract_latent(ssl.float())[0, 0][None]  # (1, P)
        rate = models.sovits.config.sampling_rate
        wav32 = torch.from_numpy(_resample(samples, sr, rate))[None].to(self.device)
        refer = reference_spectrogram(wav32)
        transcript = voice.transcript.strip()
        if transcript[-1] not in SENTENCE_END:
            transcript += "。" if voice.language == "zh" else "."
        phones, bert = self._text(transcript, voice.language)
        return _VoiceState(voice, models, codes, phones, bert, refer)

    # -- synthesis -------------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, text: str, voice: VoiceRef = None) -> Speech:
        """Speak ``text`` in ``voice`` (a ``Voice``, a library name, or None for the ``voice`` option)."""
        text = (text or "").strip()
        if not text:
            raise BadInputError("no text to speak")
        if text[-1] not in SENTENCE_END:  # the GPT ends cleaner on a sentence mark (webui does the same)
            text += "." if self.options.language == "en" or not _CJK.search(text) else "。"
        v = self.resolve(voice)
        with self._lock:
            try:
                state = self._state(v)
                audio = self._synthesize(text, state)
            except TalkerError:
                raise
            except (RuntimeError, ValueError) as e:
                raise StageError("tts", f"GPT-SoVITS failed on {text!r}: {e}") from e
        rate = state.models.sovits.config.sampling_rate
        return Speech(Audio(audio, rate), (WordTiming(text, 0.0, len(audio) / rate),))

    def _synthesize(self, text: str, voice: _VoiceState) -> np.ndarray:
        o = self.options
        m = voice.models
        phones, bert = self._text(text, o.language)
        all_ids = torch.tensor([voice.phones + phones], device=self.device)
        all_bert = torch.cat([voice.bert, bert], dim=1)[None]
        gen = torch.Generator(device=self.device).manual_seed(o.seed)
        result = m.t2s.generate(all_ids, voice.prompt_codes, all_bert, top_k=o.top_k, top_p=o.top_p,
                                temperature=o.temperature, repetition_penalty=o.repetition_penalty,
                                early_stop_num=m.early_stop_num, generator=gen)
        codes = result.tokens[None]  # (1, 1, T)
        text_ids = torch.tensor([phones], device=self.device)
        wav = m.sovits.decode(codes, text_ids, [voice.refer], noise_scale=o.noise_scale, speed=o.speed,
                              generator=gen)[0, 0]
        peak = wav.abs().max()
        if peak > 1:
            wav = wav / peak
        return wav.float().cpu().numpy()

