"""GPT-SoVITS v2 voice cloning as a Talker TTS backend.

Per voice (once): the reference clip -> HuBERT features -> semantic prompt codes; its transcript ->
phonemes + BERT features; its 32 kHz spectrogram -> timbre. Per sentence: phonemes (+ BERT for
Chinese) -> the T2S GPT continues the prompt's semantic codes -> SoVITS decodes them with the
sentence's phonemes and the reference timbre -> 32 kHz audio. Same pipeline as the original webui.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

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
from app_modules.types import Audio, WordTiming
from TTS.base import TTS, Speech
from VITS.gptsovits.loaders import load_sovits, load_t2s
from VITS.gptsovits.spectrogram import reference_spectrogram
from VITS.gptsovits.text.frontend import phonemize
from VITS.voices import Voice, VoiceLibrary, check_clip, load_clip

T2S_FILE = "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
SOVITS_FILE = "s2G2333k.pth"
SENTENCE_END = set("，。？！,.?!~:：—…")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class _VoiceState:
    name: str
    prompt_codes: torch.Tensor  # (1, P)
    phones: list[int]
    bert: torch.Tensor  # (1024, len(phones))
    refer: torch.Tensor  # (1, 1025, frames)
    extra: dict = field(default_factory=dict)


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
    """Speaks in the voice of a library clip, zero-shot. Weights load once, in the constructor."""

    @dataclass
    class Options:
        """Settings; each field can be set in settings.yaml or on the command line."""

        t2s_checkpoint: str = ""  # path to the GPT .ckpt; empty = the catalog file under checkpoints/gpt-sovits
        sovits_checkpoint: str = ""  # path to the SoVITS .pth; empty = the catalog file
        voice: str = "default"  # a name in the voice library (VITS.voices)
        top_k: int = 15
        top_p: float = 1.0
        temperature: float = 1.0
        repetition_penalty: float = 1.35  # the original's default; 1.0 turns it off
        seed: int = 0  # each sentence is sampled from this seed, so a sentence always sounds the same
        device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1"
        language: str = "auto"  # language of the text to speak: "auto", "zh" or "en"
        speed: float = 1.0
        noise_scale: float = 0.5  # SoVITS prior sampling temperature (webui default)
        max_seconds: float = 0.0  # cap on one sentence's length; 0 = the checkpoint's max_sec (54 s)
        # chinese-hubert-base and chinese-roberta-wwm-ext-large: a folder (or hub id); "" = the model manager's
        # copies (`python -m app_modules.cli download gpt-sovits` fetches them with the checkpoints)
        hubert: str = ""
        bert: str = ""
        voices_dir: str = ""  # voice library folder; empty = TALKER_VOICES or checkpoints/voices
        allow_pickle: bool = False  # load checkpoints with torch.load(weights_only=False) (trusted files only)
        threads: int = 0  # torch CPU threads; 0 leaves torch's default

    def __init__(self, options: GPTSoVITSTTS.Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = o = options or GPTSoVITSTTS.Options()
        self._verify_options()
        if o.threads:
            torch.set_num_threads(o.threads)
        self.device = torch_device(o.device)
        ckpt = checkpoints or CheckpointManager()
        t2s_path = ckpt.require("gpt-sovits", T2S_FILE, o.t2s_checkpoint or None)
        sovits_path = ckpt.require("gpt-sovits", SOVITS_FILE, o.sovits_checkpoint or None)
        self.t2s, t2s_config = load_t2s(t2s_path, o.allow_pickle)
        self.sovits, _ = load_sovits(sovits_path, o.allow_pickle)
        self.t2s.to(self.device)
        self.sovits.to(self.device)
        max_sec = o.max_seconds or float(t2s_config.get("data", {}).get("max_sec", 54))
        self.early_stop_num = int(50 * max_sec)  # the webui's hz * max_sec (hz = 50, whatever the code rate)
        self.hubert = self._load_hf("hubert", o.hubert or str(ckpt.folder("gpt-sovits", "chinese-hubert-base/")))
        self.bert, self.tokenizer = self._load_hf(
            "bert", o.bert or str(ckpt.folder("gpt-sovits", "chinese-roberta-wwm-ext-large/")))
        self.voices = VoiceLibrary(o.voices_dir or None)
        self._voice: _VoiceState | None = None
        self._lock = threading.Lock()  # one synthesis at a time: the models are shared

    @property
    def sample_rate(self) -> int:
        return self.sovits.config.sampling_rate

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
            what = "chinese-hubert-base" if kind == "hubert" else "chinese-roberta-wwm-ext-large"
            raise MissingWeightsError(
                f"cannot load {what} from {name!r} ({e}). Check the network (HF_ENDPOINT selects a mirror) "
                f"or fetch it with `python -m app_modules.cli download gpt-sovits`, or set the gpt-sovits option "
                f"`{kind}` to a local folder holding the model") from e

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
    def _prepare_voice(self, voice: Voice) -> _VoiceState:
        samples, sr = load_clip(voice.wav)
        check_clip(samples, sr)
        wav16 = _resample(samples, sr, 16000)
        wav16 = np.concatenate([wav16, np.zeros(int(0.3 * 16000), np.float32)])  # the webui pads 0.3 s
        ssl = self.hubert(torch.from_numpy(wav16)[None].to(self.device)).last_hidden_state.transpose(1, 2)
        codes = self.sovits.extract_latent(ssl.float())[0, 0][None]  # (1, P)
        wav32 = torch.from_numpy(_resample(samples, sr, self.sample_rate))[None].to(self.device)
        refer = reference_spectrogram(wav32)
        transcript = voice.transcript.strip()
        if transcript[-1] not in SENTENCE_END:
            transcript += "。" if voice.language == "zh" else "."
        phones, bert = self._text(transcript, voice.language)
        return _VoiceState(voice.name, codes, phones, bert, refer)

    def _current_voice(self) -> _VoiceState:
        if self._voice is None or self._voice.name != self.options.voice:
            self._voice = self._prepare_voice(self.voices.get(self.options.voice))
        return self._voice

    # -- synthesis -------------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, text: str) -> Speech:
        text = (text or "").strip()
        if not text:
            raise BadInputError("no text to speak")
        if text[-1] not in SENTENCE_END:  # the GPT ends cleaner on a sentence mark (webui does the same)
            text += "." if self.options.language == "en" or not _CJK.search(text) else "。"
        with self._lock:
            try:
                audio = self._synthesize(text)
            except TalkerError:
                raise
            except (RuntimeError, ValueError) as e:
                raise StageError("tts", f"GPT-SoVITS failed on {text!r}: {e}") from e
        dur = len(audio) / self.sample_rate
        return Speech(Audio(audio, self.sample_rate), (WordTiming(text, 0.0, dur),))

    def _synthesize(self, text: str) -> np.ndarray:
        o = self.options
        voice = self._current_voice()
        phones, bert = self._text(text, o.language)
        all_ids = torch.tensor([voice.phones + phones], device=self.device)
        all_bert = torch.cat([voice.bert, bert], dim=1)[None]
        gen = torch.Generator(device=self.device).manual_seed(o.seed)
        result = self.t2s.generate(all_ids, voice.prompt_codes, all_bert, top_k=o.top_k, top_p=o.top_p,
                                   temperature=o.temperature, repetition_penalty=o.repetition_penalty,
                                   early_stop_num=self.early_stop_num, generator=gen)
        codes = result.tokens[None]  # (1, 1, T)
        text_ids = torch.tensor([phones], device=self.device)
        wav = self.sovits.decode(codes, text_ids, [voice.refer], noise_scale=o.noise_scale, speed=o.speed,
                                 generator=gen)[0, 0]
        peak = wav.abs().max()
        if peak > 1:
            wav = wav / peak
        return wav.float().cpu().numpy()
