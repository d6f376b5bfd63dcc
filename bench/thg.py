"""Frames per second of a talking-head backend: the network alone and the whole stage.

    python bench/thg.py --thg wav2lip [--checkpoint FILE] [--seconds 4] [--batch-size 128]
    python bench/thg.py --thg lite
    python bench/thg.py --thg ditto [--checkpoint FOLDER] [--option render_size=256] [--option sampling_timesteps=10]

Without ``--checkpoint`` the Wav2Lip weights are seeded on the fly from the reference manifests
(``../shared/reference``, or ``$TALKER_SHARED/reference``): speed does not depend on the values.
The S3FD detector comes from ``--s3fd-checkpoint``, else ``checkpoints/wav2lip/``, else is seeded too.
Ditto's files are seeded the same way (with a tiny HuBERT ONNX and a settings pickle made on the fly)
unless ``--checkpoint`` names a clone of its hub repo or ``checkpoints/ditto/`` holds the download.
Runs on CUDA when available (``--device cpu`` to compare). Any backend in the registry can be
timed as a whole stage with ``--thg NAME`` and ``--option key=value``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import numpy as np  # noqa: E402

from app_modules import registry  # noqa: E402
from app_modules.checkpoints import CheckpointManager  # noqa: E402
from app_modules.types import Audio  # noqa: E402


def speech_like(seconds: float, rate: int = 16000) -> Audio:
    """A voiced tone with a syllable-rate envelope: exercises the mel front end like speech."""
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    wav = env * (np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 700 * t) + 0.3 * np.sin(2 * np.pi * 2200 * t))
    return Audio((0.25 * wav + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32), rate)


def default_portrait() -> np.ndarray:
    import cv2
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def seeded_checkpoint(name: str, out: Path) -> Path:
    """Write seeded weights for ``name`` (wav2lip, s3fd) in the published container format."""
    from tests.helpers.seeded_checkpoints import write_s3fd, write_wav2lip

    shared = Path(os.environ.get("TALKER_SHARED", REPO.parent / "shared")) / "reference"
    if not (shared / "seeded.py").is_file():
        sys.exit(f"no checkpoint given and no reference data at {shared} to seed one (set TALKER_SHARED)")
    write = {"wav2lip": write_wav2lip, "s3fd": write_s3fd}[name]
    return write(shared, out / f"{name}.pth")


def seeded_ditto(out: Path) -> Path:
    """A folder laid out as the Ditto hub repo, with seeded networks (tests/helpers/ditto_files.py)."""
    from tests.helpers.ditto_files import write_ditto_tree

    shared = Path(os.environ.get("TALKER_SHARED", REPO.parent / "shared")) / "reference"
    if not (shared / "seeded.py").is_file():
        sys.exit(f"no checkpoint given and no reference data at {shared} to seed one (set TALKER_SHARED)")
    return write_ditto_tree(shared, out) / "ditto"


def bench_ditto(thg, repeats: int) -> None:
    """Ditto's parts on their own: one LMDM window (every DDIM step is a guided pass over 80 frames)
    and the renderer (warp + decoder) per frame at batch 1 and at the backend's batch size."""
    import torch

    dev = thg.device
    _sync(dev)
    from THG.ditto.lmdm import DDIMSampler

    ddim = DDIMSampler(thg.lmdm, thg.steps, torch.Generator().manual_seed(0), device=dev)
    kp, cond = torch.zeros(1, 265, device=dev), torch.zeros(1, 80, 1103, device=dev)
    ddim.sample(kp, cond)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(repeats):
        ddim.sample(kp, cond)
    _sync(dev)
    window = (time.perf_counter() - t0) / repeats
    frames = 80 - thg.overlap
    print(f"{'LMDM window':28s} {thg.steps} steps: {window * 1000:8.0f} ms for {frames} new frames "
          f"({window / frames * 1000:.0f} ms a frame)")
    size = thg.options.render_size // 4
    for batch in sorted({1, thg.options.batch_size or (8 if dev.type == 'cuda' else 1), 4}):
        feature = torch.randn(batch, 32, 16, size, size, device=dev)
        kp_s = 0.3 * torch.randn(batch, 21, 3, device=dev)
        with torch.no_grad(), thg._autocast():
            def run(feature=feature, kp_s=kp_s):
                return thg.decoder(thg.warp(feature, kp_s, kp_s + 0.01))
            run()
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(repeats):
                run()
            _sync(dev)
        dt_s = (time.perf_counter() - t0) / repeats
        print(f"{'renderer (warp + decoder)':28s} batch {batch:4d}: {batch / dt_s:8.1f} fps  "
              f"({dt_s * 1000:.0f} ms a batch, {2 * thg.options.render_size} px crops)")


def _sync(device) -> None:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(device)


def bench_network(thg, batch: int, repeats: int) -> None:
    """The generator alone on random inputs: full forward (as the original runs it for every
    frame) and the still-photo path (face features cached, audio encoder + decoder)."""
    import torch

    model, dev, dt = thg.model, thg.device, thg.dtype
    mel = torch.randn(batch, 1, 80, 16, device=dev).to(dt)
    face = torch.rand(batch, 6, 96, 96, device=dev).to(dt)
    if dev.type == "cuda":
        face = face.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        feats = model.encode_face(face[:1])
        runs = {"network, full forward": lambda: model(mel, face),
                "network, cached face": lambda: model.decode(model.encode_audio(mel), feats)}
        for label, fn in runs.items():
            fn()  # warm-up: allocations, cuDNN autotuning
            _sync(dev)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(repeats):
                fn()
            _sync(dev)
            dt_s = (time.perf_counter() - t0) / repeats
            cpu = (time.process_time() - c0) / repeats
            print(f"{label:28s} batch {batch:4d}: {batch / dt_s:8.1f} fps  ({dt_s * 1000:.0f} ms a batch, "
                  f"{cpu:.1f} CPU-s: {_load_note(cpu, dt_s)})")


def _load_note(cpu_s: float, wall_s: float) -> str:
    """How busy our threads kept the CPUs: far below the thread count means other load (shared CI)."""
    return f"{cpu_s / wall_s:.1f} cores busy"


def bench_stage(thg, image: np.ndarray, audio: Audio) -> None:
    t0 = time.perf_counter()
    avatar = thg.prepare(image)
    t_prep = time.perf_counter() - t0
    n, first, size = 0, None, None
    t0, c0 = time.perf_counter(), time.process_time()
    for frame in thg.render(avatar, audio):
        n += 1
        if first is None:
            first, size = time.perf_counter() - t0, f"{frame.shape[1]}x{frame.shape[0]}"
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    want = math.ceil(audio.duration * getattr(thg, "fps", 25))
    print(f"{'whole stage':28s} {n} frames {size}: {n / total:8.1f} fps  "
          f"(prepare {t_prep:.2f} s, first frame after {first:.2f} s, {total:.2f} s for {audio.duration:.1f} s "
          f"of audio: {'real time' if total <= audio.duration else f'{total / audio.duration:.1f}x real time'}; "
          f"{_load_note(cpu, total)})")
    if n != want:
        print(f"WARNING: {n} frames for {audio.duration:.2f} s of audio, expected {want}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--thg", default="wav2lip", help=f"backend: {', '.join(registry.names('thg'))}")
    ap.add_argument("--checkpoint", default="", help="Wav2Lip weights (default: seeded on the fly)")
    ap.add_argument("--s3fd-checkpoint", default="", help="S3FD weights (default: checkpoints/ or seeded)")
    ap.add_argument("--image", default="", help="portrait (default: Grace Hopper from matplotlib)")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the test audio")
    ap.add_argument("--batch-size", type=int, default=0, help="frames per network call (backend default if 0)")
    ap.add_argument("--device", default="", help="auto, cpu, cuda (wav2lip)")
    ap.add_argument("--repeats", type=int, default=2, help="timed network calls")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="any backend option")
    args = ap.parse_args(argv)

    options = dict(o.split("=", 1) for o in args.option)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.device:
        options["device"] = args.device
    if args.batch_size:
        options["batch_size"] = args.batch_size
    image = default_portrait()
    if args.image:
        from app_modules.media import load_image

        image = load_image(args.image)

    with tempfile.TemporaryDirectory() as tmp:
        if args.thg == "wav2lip":
            options["checkpoint"] = args.checkpoint or str(seeded_checkpoint("wav2lip", Path(tmp)))
            s3fd = args.s3fd_checkpoint
            if not s3fd:
                local = CheckpointManager().root / "wav2lip" / "s3fd-619a316812.pth"
                s3fd = str(local) if local.is_file() else str(seeded_checkpoint("s3fd", Path(tmp)))
            options["s3fd_checkpoint"] = s3fd
        if args.thg == "ditto" and "checkpoint" not in options:
            local = CheckpointManager().missing("ditto")
            if args.checkpoint or local:
                options["checkpoint"] = args.checkpoint or str(seeded_ditto(Path(tmp)))
        t0 = time.perf_counter()
        thg = registry.create("thg", args.thg, options)
        device = getattr(thg, "device", "cpu")
        try:
            import torch

            threads = torch.get_num_threads()
        except ImportError:
            threads = os.cpu_count()
        print(f"{args.thg} on {device} ({threads} CPU threads), loaded in "
              f"{time.perf_counter() - t0:.1f} s; weights: {options.get('checkpoint', 'n/a')}")
        if hasattr(thg, "model") and hasattr(thg.model, "decode"):
            bench_network(thg, getattr(thg.options, "batch_size", 32), args.repeats)
        if args.thg == "ditto":
            bench_ditto(thg, args.repeats)
        bench_stage(thg, image, speech_like(args.seconds))


if __name__ == "__main__":
    main()
