"""End to end on the command line, offline, on the CPU: espeak-ng speaks, the lite head moves."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_modules.media import ffmpeg_exe, probe

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "app_modules.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=240)


def decode_frames(path: Path) -> np.ndarray:
    info = next(s for s in probe(path)["streams"] if s["codec_type"] == "video")
    w, h = int(info["width"]), int(info["height"])
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def landmarks(image: np.ndarray) -> np.ndarray:
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        lm = mesh.process(image).multi_face_landmarks[0].landmark
    h, w = image.shape[:2]
    return np.array([(p.x * w, p.y * h) for p in lm])


def box(points: np.ndarray, pad: int) -> tuple[slice, slice]:
    x0, y0 = points.min(0).astype(int) - pad
    x1, y1 = points.max(0).astype(int) + pad
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


@pytest.fixture(scope="module")
def said(tmp_path_factory, portrait_path):
    out = tmp_path_factory.mktemp("say") / "answer.mp4"
    proc = cli("say", "--image", str(portrait_path), "--text",
               "Hello, I am Grace Hopper. I wrote the first compiler, and I found a real bug in a computer.",
               "--out", str(out), "--tts", "espeak", "--thg", "lite")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_say_makes_one_video_and_one_audio_stream_of_equal_length(said):
    out, proc = said
    info = probe(out)
    kinds = [s["codec_type"] for s in info["streams"]]
    assert sorted(kinds) == ["audio", "video"], kinds
    durations = {s["codec_type"]: float(s["duration"]) for s in info["streams"]}
    assert durations["video"] > 3.0
    assert abs(durations["video"] - durations["audio"]) < 0.2, durations
    assert out.with_suffix(".srt").read_text().count("-->") >= 2
    assert "sentence 2: video ready" in proc.stderr  # progress is shown


def test_mouth_moves_and_the_rest_of_the_face_stays_put(said, portrait):
    out, _ = said
    frames = decode_frames(out).astype(np.float32)
    lm = landmarks(frames[0].astype(np.uint8))
    mouth = box(lm[[61, 291, 13, 14, 17, 0]], 6)
    eyes = box(lm[[33, 133, 263, 362, 159, 386]], 6)
    forehead = box(lm[[10, 109, 338, 67, 297]], 6)
    motion = lambda region, f=frames: float(f[:, region[0], region[1]].std(axis=0).mean())  # noqa: E731
    # the eyes blink (issue 17): a few brief frames where they close; apart from those they stay put
    eye_change = np.abs(frames[:, eyes[0], eyes[1]] - frames[0, eyes[0], eyes[1]]).mean(axis=(1, 2, 3))
    blinking = eye_change > 3.0
    runs = np.diff(np.concatenate([[0], blinking.astype(int), [0]]))
    assert all(e - s <= 8 for s, e in zip(np.flatnonzero(runs == 1), np.flatnonzero(runs == -1), strict=True))
    assert blinking.mean() < 0.15, blinking.mean()
    mouth_motion, eye_motion, forehead_motion = motion(mouth), motion(eyes, frames[~blinking]), motion(forehead)
    assert mouth_motion > 8.0, mouth_motion
    assert eye_motion < 1.5 and forehead_motion < 1.5, (eye_motion, forehead_motion)
    assert mouth_motion > 10 * max(eye_motion, forehead_motion)


@pytest.mark.parametrize("case", ["no face", "unreadable image", "empty text", "missing image"])
def test_say_bad_input_exits_with_one_actionable_line(tmp_path, portrait_path, case):
    image, text = str(portrait_path), "Hello there."
    if case == "no face":
        import cv2

        image = str(tmp_path / "grey.png")
        cv2.imwrite(image, np.full((240, 320, 3), 128, np.uint8))
    elif case == "unreadable image":
        image = str(tmp_path / "broken.jpg")
        Path(image).write_bytes(b"this is not a jpeg")
    elif case == "empty text":
        text = "   "
    elif case == "missing image":
        image = str(tmp_path / "nowhere.png")
    proc = cli("say", "--image", image, "--text", text, "--out", str(tmp_path / "o.mp4"), "--tts", "espeak",
               "--thg", "lite")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1
    expected = {"no face": "no face found in the image", "unreadable image": "cannot read the image broken.jpg",
                "empty text": "the text is empty", "missing image": "image file not found"}[case]
    assert expected in lines[0]
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("case", ["silent", "corrupt", "empty"])
def test_chat_bad_audio(tmp_path, portrait_path, case):
    wav = tmp_path / "q.wav"
    if case == "silent":
        import soundfile as sf

        sf.write(str(wav), np.zeros(32000, np.float32), 16000)
    elif case == "corrupt":
        wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 10)
    else:
        wav.write_bytes(b"")
    proc = cli("chat", "--image", str(portrait_path), "--audio", str(wav), "--out", str(tmp_path / "o.mp4"),
               "--llm", "read-aloud", "--tts", "espeak", "--thg", "lite")
    assert proc.returncode == 2, proc.stderr
    expected = {"silent": "no speech detected", "corrupt": "corrupt or not audio", "empty": "is empty"}[case]
    assert expected in proc.stderr


def test_chat_with_unreachable_llm_server_says_so(tmp_path, portrait_path):
    proc = cli("chat", "--image", str(portrait_path), "--text", "Hi there", "--out", str(tmp_path / "o.mp4"),
               "--llm", "openai", "--set", "openai.base_url=http://127.0.0.1:9/v1", "--set", "openai.retries=0",
               "--tts", "espeak", "--thg", "lite")
    assert proc.returncode == 5
    assert "127.0.0.1:9" in proc.stderr and "error: llm" in proc.stderr


def test_burned_subtitles_are_drawn_into_the_picture(tmp_path, portrait_path, portrait):
    out = tmp_path / "burned.mp4"
    proc = cli("say", "--image", str(portrait_path), "--text", "Subtitles appear at the bottom of the picture.",
               "--out", str(out), "--tts", "espeak", "--thg", "lite", "--subtitles", "burn")
    assert proc.returncode == 0, proc.stderr
    frames = decode_frames(out).astype(np.float32)
    middle = frames[len(frames) // 2]
    h = middle.shape[0]
    source = portrait[: middle.shape[0], : middle.shape[1]].astype(np.float32)
    bottom_change = np.abs(middle[int(0.8 * h):] - source[int(0.8 * h):]).mean()
    top_change = np.abs(middle[: int(0.2 * h)] - source[: int(0.2 * h)]).mean()
    assert bottom_change > 3 * top_change + 2.0, (bottom_change, top_change)
