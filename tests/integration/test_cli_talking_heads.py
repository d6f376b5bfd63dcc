"""Wav2Lip and SadTalker end to end through the real command line, offline, on the CPU.

`python -m app_modules.cli say` runs in a subprocess on Grace Hopper's portrait with espeak-ng for
the voice and seeded weights written in the published containers (``tests/helpers``), handed over
the way a user would: ``--checkpoint FILE`` (Wav2Lip's S3FD detector lying next to it, SadTalker's
mapping file through ``--set``). The catalog folder is empty, so nothing else can be picked up.
Seeded weights make faces that look like nothing in particular; what is checked is that the real
files flow through the whole turn into a playable video of the right size and length.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_modules.media import ffmpeg_exe, probe
from tests.helpers.seeded_checkpoints import (
    write_s3fd,
    write_sadtalker,
    write_sadtalker_mapping,
    write_wav2lip,
)

REPO = Path(__file__).resolve().parents[2]
TEXT = "Hi."  # about half a second of speech: SadTalker renders ~5 s of CPU per frame even at 128

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("no-checkpoints")


def cli(*args: str, catalog: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALKER_CHECKPOINTS": str(catalog), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "app_modules.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


def check_video(path: Path, width: int, height: int) -> dict[str, float]:
    """One H.264 video and one audio stream of the same length, frames of the given size."""
    streams = probe(path)["streams"]
    assert sorted(s["codec_type"] for s in streams) == ["audio", "video"], streams
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (int(video["width"]), int(video["height"])) == (width, height)
    durations = {s["codec_type"]: float(s["duration"]) for s in streams}
    assert durations["audio"] > 0.2, durations  # espeak said something
    assert abs(durations["video"] - durations["audio"]) < 0.2, durations
    return durations


def decode_frames(path: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


# ----------------------------------------------------------------------------------------------- Wav2Lip

@pytest.fixture(scope="module")
def wav2lip_checkpoint(reference_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("my-wav2lip")
    write_s3fd(reference_dir, folder / "s3fd.pth")  # the Wav2Lip repository's name, found next to the checkpoint
    return write_wav2lip(reference_dir, folder / "wav2lip_gan.pth")


def test_wav2lip_say_makes_a_video_of_the_portrait(wav2lip_checkpoint, empty_catalog, portrait_path, portrait,
                                                   tmp_path):
    out = tmp_path / "hi.mp4"
    proc = cli("say", "--image", str(portrait_path), "--text", TEXT, "--out", str(out), "--tts", "espeak",
               "--thg", "wav2lip", "--checkpoint", str(wav2lip_checkpoint), catalog=empty_catalog)
    assert proc.returncode == 0, proc.stderr
    assert "sentence 1: video ready" in proc.stderr
    h, w = portrait.shape[:2]
    check_video(out, w, h)  # Wav2Lip keeps the portrait's size (600x512 is under max_side)
    frames = decode_frames(out, w, h).astype(np.int16)
    diff = np.abs(frames - portrait).max(axis=3)  # (n, h, w)
    # Only the face box is repainted: most of each frame is the portrait (up to H.264 loss) ...
    assert np.median(diff) < 6, np.median(diff)
    # ... and the box holds what the network generated, not the portrait.
    assert (diff > 40).mean() > 0.001, (diff > 40).mean()


def test_wav2lip_without_weights_names_the_file_and_the_download_command(empty_catalog, portrait_path, tmp_path):
    out = tmp_path / "none.mp4"
    proc = cli("say", "--image", str(portrait_path), "--text", TEXT, "--out", str(out), "--tts", "espeak",
               "--thg", "wav2lip", catalog=empty_catalog)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "wav2lip_gan.pth" in errors[0] and "python -m app_modules.cli download wav2lip" in errors[0]
    assert not out.exists()


# --------------------------------------------------------------------------------------------- SadTalker

@pytest.fixture(scope="module")
def sadtalker_files(reference_dir, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("my-sadtalker")
    return (write_sadtalker(reference_dir, folder / "SadTalker_V0.0.2_256.safetensors"),
            write_sadtalker_mapping(reference_dir, folder / "mapping_00229-model.pth.tar"))


def test_sadtalker_say_makes_a_video_of_the_face(sadtalker_files, empty_catalog, portrait_path, tmp_path):
    model, mapping = sadtalker_files
    out = tmp_path / "hi.mp4"
    proc = cli("say", "--image", str(portrait_path), "--text", TEXT, "--out", str(out), "--tts", "espeak",
               "--thg", "sadtalker", "--checkpoint", str(model), "--set", f"sadtalker.mapping_checkpoint={mapping}",
               "--set", "sadtalker.render_size=128", "--set", "sadtalker.device=cpu", catalog=empty_catalog)
    assert proc.returncode == 0, proc.stderr
    assert "sentence 1: video ready" in proc.stderr
    # The crop preprocess renders the face square (373x374 px in this portrait, inside the image) at
    # render_size wide, keeping its aspect ratio: 128 x int(128 * 374 / 373) = 128 x 128.
    durations = check_video(out, 128, 128)
    frames = decode_frames(out, 128, 128)
    assert len(frames) >= round(durations["audio"] * 25) - 1
    assert all(f.std() > 1 for f in frames)  # rendered images, not a flat fill
