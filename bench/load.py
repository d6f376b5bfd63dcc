"""A load run against the real web UI: concurrent HTTP API turns and browser sessions, round after round,
with the server's memory after each round.

    python -m bench load [--rounds 6] [--api 8] [--browsers 2] [--concurrency 1]

Offline backends (read-aloud, espeak-ng, the lite head); the server is ``python webui.py`` on a free
port. Memory should stay flat once the first round has loaded every backend; any failed turn stops the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.load import rss_mb, run_load  # noqa: E402
from tests.helpers.webui import running_webui  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench load")
    p.add_argument("--rounds", type=int, default=6, help="rounds after the warm-up one (default 6: 60 turns)")
    p.add_argument("--api", type=int, default=8, help="API turns at once per round")
    p.add_argument("--browsers", type=int, default=2, help="browser sessions, one turn each per round")
    p.add_argument("--concurrency", type=int, default=1, help="server.concurrency (renders at once)")
    args = p.parse_args(argv)
    import matplotlib

    portrait = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        overrides = ["llm=read-aloud", "tts=espeak", "thg=lite", f"server.concurrency={args.concurrency}",
                     f"pipeline.workdir={work / 'work'}", f"limits.queue={args.api + args.browsers}"]
        with running_webui(work, overrides) as (url, _log):
            pid = int((work / "server.pid").read_text())
            warm = run_load(url, portrait, 1, args.api, args.browsers)
            start = rss_mb(pid)
            print(f"warm-up: {len(warm)} turns, RSS {start:.0f} MB")
            print(f"{'round':>5} {'turns':>6} {'RSS MB':>8} {'median s':>9} {'max s':>7}")
            rows = []

            def report(r: int, n: int) -> None:
                rows.append((r, n, rss_mb(pid)))

            seconds = run_load(url, portrait, args.rounds, args.api, args.browsers, report)
            per = args.api + args.browsers
            for (r, n, rss) in rows:
                chunk = seconds[r * per:(r + 1) * per]
                print(f"{r + 1:>5} {n:>6} {rss:>8.0f} {statistics.median(chunk):>9.1f} {max(chunk):>7.1f}")
            print(f"{len(seconds)} turns, no failure; RSS {start:.0f} -> {rows[-1][2]:.0f} MB "
                  f"({rows[-1][2] - start:+.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
