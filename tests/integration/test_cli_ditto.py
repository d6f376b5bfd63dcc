"""``python -m app_modules.cli say --thg ditto`` end to end, offline, on the CPU, with the motion measured
on the video's frames.

The Ditto files are the published containers and shapes with values set by hand
(``tests/helpers/ditto_seethrough.py``) so that the renderer shows the photo and moves it where the
keypoints move: seeded weights alone render noise, on which nobody could see a blink. Everything else
is the product path: espeak speaks the text, the tiny HuBERT ONNX gives the features (a loudness
column among them), the LMDM windows run online with one DDIM step and guidance, the relative
stitching adds the settings file's blink template every 5 frames, and the frames are warped, decoded,
pasted back and written to the mp4 the test reads back.

Measured on the frames (the photo's landmarks say where the eyes and the mouth are):
* the head moves: the face region's best translation against the first frame (ECC, blurred frames);
* the eyes blink: after that translation is undone, the eyes change at the planned blinks far more than
  the rest of the face does, and far more than between blinks;
* the mouth moves with the speech: the mouth's change from the first (silent) frame follows the
  loudness of the audio track (correlation above 0.6 at the best offset within 2 frames; 0.8 measured,
  one frame apart).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_modules import media
from tests.helpers.ditto_seethrough import BLINK_FRAMES, write_see_through
from tests.integration.test_cli_talking_heads import check_video, decode_frames

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(900)
BLINK_EVERY = 5


@pytest.fixture(scope="module")
def see_through(reference_dir, portrait, tmp_path_factory):
    return write_see_through(reference_dir, tmp_path_factory.mktemp("ditto-see-through"), portrait)


@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory):
    return tmp_path_factory.mktemp("no-checkpoints")


def cli(*args: str, catalog: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALKER_CHECKPOINTS": str(catalog), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "app_modules.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=800)


def loudness(audio: np.ndarray, frames: int) -> np.ndarray:
    return np.array([np.sqrt(np.mean(audio[i * 640:(i + 1) * 640] ** 2)) if i * 640 < len(audio) else 0.0
                     for i in range(frames)])


def head_shifts(frames: np.ndarray, face: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the translation of the face region from frame 0 (px), and the blurred grey frames with
    it undone. The renderer here works on a 32x32 grid, so frames are compared blurred."""
    import cv2

    blur = np.stack([cv2.GaussianBlur(f.mean(-1), (0, 0), 5) for f in frames.astype(np.float32)])
    x0, y0, x1, y1 = face
    mask = np.zeros(blur.shape[1:], np.uint8)
    mask[y0:y1, x0:x1] = 1
    shifts, aligned = [], []
    for img in blur:
        warp = np.eye(2, 3, dtype=np.float32)
        _, warp = cv2.findTransformECC(blur[0], img, warp, cv2.MOTION_TRANSLATION,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5), mask, 1)
        shifts.append(warp[:, 2].copy())
        aligned.append(cv2.warpAffine(img, warp, img.shape[::-1], flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP))
    return np.array(shifts), np.stack(aligned)


def change(aligned: np.ndarray, box: tuple[int, int, int, int], ref: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    region = aligned[:, y0:y1, x0:x1]
    return np.abs(region - region[ref]).mean(axis=(1, 2))


def blink_peaks(frames: int) -> tuple[list[int], list[int]]:
    """Frames where the planned blinks are (nearly) closed, and frames with no blink near them."""
    from THG.ditto.motion import blink_schedule
    from THG.ditto_thg import BLINK_FRAMES as PLAN

    rows = blink_schedule(PLAN, BLINK_FRAMES, BLINK_EVERY, np.random.default_rng())[:frames]  # the backend's plan
    mid = (BLINK_FRAMES - 1) / 2
    closed = [i for i in range(frames) if rows[i] and abs(rows[i] - mid) <= 1]
    blinking = rows > 0
    open_ = [i for i in range(1, frames) if not blinking[max(0, i - 1):i + 2].any()]
    return closed, open_


def test_ditto_say_moves_the_head_blinks_and_moves_the_mouth_with_the_speech(see_through, empty_catalog,
                                                                             portrait_path, portrait, tmp_path):
    out = tmp_path / "hi.mp4"
    proc = cli("say", "--image", str(portrait_path), "--text", "Hi there.", "--out", str(out), "--tts", "espeak",
               "--thg", "ditto", "--checkpoint", str(see_through.folder), "--set", "ditto.render_size=128",
               "--set", "ditto.sampling_timesteps=1", "--set", "ditto.device=cpu",
               "--set", f"ditto.blink_every={BLINK_EVERY}", catalog=empty_catalog)
    assert proc.returncode == 0, proc.stderr
    h, w = portrait.shape[0] // 2 * 2, portrait.shape[1] // 2 * 2
    durations = check_video(out, w, h)  # the face is pasted back into the whole photo
    frames = decode_frames(out, w, h)
    n = len(frames)
    assert n >= round(durations["audio"] * 25) - 1 and n > 2 * BLINK_EVERY + BLINK_FRAMES

    shifts, aligned = head_shifts(frames, see_through.face)
    moved = np.hypot(*shifts.T)
    assert moved.max() > 1.5 and np.ptp(shifts[:, 0]) > 1.5, shifts  # the head sways (pixels)

    closed, open_ = blink_peaks(n)
    assert closed and open_
    eyes = np.mean([change(aligned, b, 0) for b in see_through.eyes], axis=0)
    rest = change(aligned, see_through.face, 0)
    ratio = eyes / (rest + 1e-3)
    assert ratio[closed].mean() > 1.5 * ratio[open_].mean(), (ratio.round(2), closed, open_)

    audio = media.load_audio(out, 16000).samples
    loud = loudness(audio, n)
    mouth = change(aligned, see_through.mouth, 0)  # the first frame is the silence before "Hi"
    assert sync(mouth, loud) > 0.6, (mouth.round(1), loud.round(3))


def sync(mouth: np.ndarray, loud: np.ndarray, max_lag: int = 2) -> float:
    """Correlation of the mouth's change with the loudness at the best offset within ``max_lag`` frames:
    the mp4's AAC track and the video are only aligned that closely (as a SyncNet offset search allows)."""
    n = len(mouth)
    return max(np.corrcoef(mouth[max(lag, 0):n + min(lag, 0)], loud[max(-lag, 0):n + min(-lag, 0)])[0, 1]
               for lag in range(-max_lag, max_lag + 1))
