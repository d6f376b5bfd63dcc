"""``python -m bench all`` runs every benchmark; ``python -m bench turn|tts|asr|llm|thg|realtime|load [ARGS]``
runs one.

Each benchmark prints its own table; every run is also recorded as JSON in ``bench/results/``
(gitignored): its output, wall time, peak RSS and peak GPU memory, with the machine named, and
``all`` gathers them in ``summary.json``."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

BENCHES = {
    "turn": ["-m", "bench.turn"],
    "tts": ["-m", "bench.tts"],
    "asr": ["-m", "bench.asr"],
    "llm": ["-m", "bench.llm"],
    "thg": ["bench/thg.py", "--thg", "lite"],
    "realtime": ["-m", "bench.realtime"],
    "load": ["-m", "bench.load"],
}


def machine() -> str:
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", " + torch.cuda.get_device_name(0)
    except ImportError:
        pass
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*BENCHES, "all"):
        print(__doc__)
        return 2
    root = Path(__file__).resolve().parent.parent
    names = list(BENCHES) if argv[0] == "all" else [argv[0]]
    out_dir = root / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    status = 0
    for name in names:
        extra = argv[1:] if argv[0] != "all" else []
        if name == "turn":
            extra = extra + ["--json", str(out_dir / "turn.json")]
        print(f"\n=== {name} ({machine()}) ===", flush=True)
        measured = out_dir / f"{name}.run.json"
        rc = subprocess.call([sys.executable, "bench/_measure.py", str(measured), *BENCHES[name], *extra],
                             cwd=root)
        status = status or rc
    summary: dict = {"machine": machine()}
    for name in names:
        if (out_dir / f"{name}.run.json").exists():
            summary[name] = json.loads((out_dir / f"{name}.run.json").read_text())
    if "turn" in summary and (out_dir / "turn.json").exists():
        summary["turn"]["results"] = json.loads((out_dir / "turn.json").read_text())
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {out_dir / 'summary.json'}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
