"""A load of concurrent turns against a running web UI (its HTTP API and its browser sessions), shared by
the load test and ``python -m bench load``."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def api_turn(url: str, portrait: Path, text: str, auth=None) -> list[dict]:
    """One ``/api/turn``; its NDJSON events (the last must be the result)."""
    import httpx

    r = httpx.post(url + "api/turn", data={"text": text}, timeout=600, auth=auth,
                   files={"image": ("face.jpg", portrait.read_bytes(), "image/jpeg")})
    events = [json.loads(x) for x in r.text.splitlines() if x.strip()]
    assert events and events[-1]["type"] == "result", events[-1:] or r.text
    return events


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def run_load(url: str, portrait: Path, rounds: int, api_turns: int = 8, browsers: int = 2,
             on_round=None) -> list[float]:
    """``rounds`` times: ``api_turns`` API turns and one turn of each of ``browsers`` browser sessions, all
    at once. Returns every turn's seconds; any failure raises. ``on_round(round, turns so far)``."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(browsers)]

    def timed(fn, *args):
        t0 = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t0

    def browser_turn(client, i):
        _chat, _s, final, status, *_ = client.predict(f"Load turn {i}, said once.", None, "Grace Hopper",
                                                      "Female", api_name="/builtin_turn")
        assert final is not None, status

    seconds: list[float] = []
    with ThreadPoolExecutor(api_turns + browsers) as pool:
        for r in range(rounds):
            jobs = [pool.submit(timed, api_turn, url, portrait, f"Load turn {r}-{i}.") for i in range(api_turns)]
            jobs += [pool.submit(timed, browser_turn, c, r) for c in clients]
            seconds += [j.result(timeout=900) for j in jobs]
            if on_round is not None:
                on_round(r, len(seconds))
    return seconds
