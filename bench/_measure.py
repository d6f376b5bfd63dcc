"""Run one benchmark in this process and record what it cost: wall time, peak RSS and peak GPU memory.

    python bench/_measure.py OUT.json -m bench.tts [ARGS]      (or a script path instead of -m MODULE)

The benchmark's own table is printed as usual and also kept in the JSON, so ``python -m bench all``
gives one file with every stage's numbers and the memory each needed."""

from __future__ import annotations

import contextlib
import io
import json
import resource
import runpy
import sys
import time
from pathlib import Path


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def main(argv: list[str]) -> int:
    out, rest = Path(argv[0]), argv[1:]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    captured = io.StringIO()
    t0 = time.perf_counter()
    status = 0
    with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
        try:
            if rest[0] == "-m":
                sys.argv = [rest[1], *rest[2:]]
                runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
            else:
                sys.argv = rest
                runpy.run_path(rest[0], run_name="__main__")
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    gpu_mb = None
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    out.write_text(json.dumps({
        "command": rest, "exit_code": status, "seconds": time.perf_counter() - t0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_gpu_mb": gpu_mb,
        "output": captured.getvalue(),
    }, indent=2))
    print(f"[{rest[1] if rest[0] == '-m' else rest[0]}: peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
          + (f", peak GPU {gpu_mb:.0f} MB" if gpu_mb is not None else "") + "]")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
