"""The offline CPU talking head: frame count, silence, no face, many sessions at once, and what the
open mouth and the blinking eyes look like."""

import threading
from pathlib import Path

import numpy as np
import pytest

from app_modules.errors import BadInputError, TalkerError
from app_modules.types import Audio
from THG.lite_thg import (
    LOWER_INNER,
    LOWER_OUTER,
    UPPER_INNER,
    UPPER_OUTER,
    LiteTHG,
    mouth_openness,
    render_frame,
)


@pytest.fixture(scope="module")
def thg():
    return LiteTHG()


def speechlike(seconds: float, rate: int = 16000) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)  # three syllables a second
    return Audio((0.5 * envelope * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate)


def test_one_frame_per_25th_of_a_second_and_the_mouth_follows_the_sound(thg, portrait):
    avatar = thg.prepare(portrait)
    audio = speechlike(1.03)
    frames = list(thg.render(avatar, audio))
    assert len(frames) == 26 and {f.shape for f in frames} == {avatar.image.shape}
    changed = [np.abs(f.astype(int) - avatar.image).sum() for f in frames]
    loud = mouth_openness(audio, 25)
    assert np.corrcoef(changed, loud)[0, 1] > 0.8


def test_silence_keeps_the_portrait_still(thg, portrait):
    avatar = thg.prepare(portrait)
    frames = list(thg.render(avatar, Audio(np.zeros(8000, np.float32), 16000)))
    assert len(frames) == 13 and all((f == avatar.image).all() for f in frames)


def test_no_face_is_a_bad_input(thg):
    with pytest.raises(BadInputError, match="no face found"):
        thg.prepare(np.full((240, 320, 3), 128, np.uint8))


def test_sessions_can_prepare_portraits_at_the_same_time(thg, portrait):
    # MediaPipe graphs are not thread-safe; unguarded, this crashed the whole process
    boxes, errors = [], []

    def prepare():
        try:
            for _ in range(3):
                boxes.append(thg.prepare(portrait).box)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(boxes) == 12 and len(set(boxes)) == 1


# ---- what the open mouth and the eyes look like (issue 17) -----------------------------------------

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _opening(avatar, openness: float) -> np.ndarray:
    """A boolean mask (full frame) of the painted gap between the lips at ``openness``."""
    import cv2

    drop = openness * avatar.max_open
    upper, lower = avatar.upper.copy(), avatar.lower.copy()
    upper[:, 1] += drop * avatar.upper_weight
    lower[:, 1] += drop * avatar.lower_weight
    x0, y0 = avatar.box[:2]
    poly = np.concatenate([upper, lower[::-1]]) + (x0, y0)
    mask = np.zeros(avatar.image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)  # inside, away from the soft edge


def test_the_open_mouth_is_shaded_teeth_throat_and_tongue_not_one_flat_colour(thg, portrait):
    import cv2

    avatar = thg.prepare(portrait)
    frame = render_frame(avatar, 0.8)
    inside = frame[_opening(avatar, 0.8)]
    assert len(inside) > 300, "the mouth hardly opened"
    luma = _luma(inside)
    # teeth under the upper lip, a dark throat: far apart in brightness, with many shades between
    assert np.percentile(luma, 95) - np.percentile(luma, 5) > 90
    assert len(np.unique(inside // 8, axis=0)) > 40
    # the inside is the warm red of the lips, deepened, not a grey hole: red leads in the darker half
    dark = inside[luma < np.median(luma)].astype(float)
    assert dark[:, 0].mean() > 1.5 * dark[:, 1].mean()
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "lite-mouth-open.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_mouth_colours_come_from_the_portraits_lips(thg, portrait):
    import cv2

    from THG.face_mesh import FaceMesh

    avatar = thg.prepare(portrait)
    # the same photo with the lips tinted blue: the painted inside of the mouth follows them
    lm = FaceMesh()(avatar.image)
    lips = np.zeros(avatar.image.shape[:2], np.uint8)
    for outer, inner in ((UPPER_OUTER, UPPER_INNER), (LOWER_OUTER, LOWER_INNER)):
        cv2.fillPoly(lips, [np.concatenate([lm[list(outer)], lm[list(inner)][::-1]]).astype(np.int32)], 1)
    tinted = avatar.image.copy()
    tinted[lips > 0] = (tinted[lips > 0] * np.array([0.4, 0.6, 1.0]) + np.array([0, 0, 60])).clip(0, 255)
    blue = thg.prepare(tinted)
    assert avatar.colours.inner[0] > avatar.colours.inner[2]
    assert blue.colours.inner[2] > avatar.colours.inner[2] + 10 and blue.colours.inner[0] < avatar.colours.inner[0]


def test_the_jaw_and_chin_move_down_with_the_mouth(thg, portrait):
    avatar = thg.prepare(portrait)
    closed, wide = render_frame(avatar, 0.0), render_frame(avatar, 1.0)
    # a strip across the chin, found again in the open frame: it moved down by most of the drop
    x0, y0, x1, y1 = avatar.box
    cx = int((x0 + x1) / 2)
    chin = int(y0 + avatar.lower[:, 1].max() + 0.6 * (y1 - y0 - avatar.lower[:, 1].max()) * 0.5)
    strip = _luma(closed[chin - 6:chin + 6, cx - 15:cx + 15])
    errors = [np.abs(_luma(wide[chin - 6 + d:chin + 6 + d, cx - 15:cx + 15]) - strip).mean()
              for d in range(0, int(avatar.max_open) + 8)]
    moved = int(np.argmin(errors))
    assert moved >= 0.6 * avatar.max_open, f"the chin moved {moved} px for a {avatar.max_open:.0f} px drop"
    # and the forehead did not move at all
    assert np.array_equal(closed[: y0], wide[: y0])


def test_the_eyes_blink_in_rendered_speech_and_open_again(thg, portrait):
    import cv2

    avatar = thg.prepare(portrait)
    assert len(avatar.eyes) == 2
    frames = list(thg.render(avatar, speechlike(10.0)))
    # the dark pupil and iris between the lids: hidden by the lid during a blink, back after it
    masks = []
    for eye in avatar.eyes:
        x0, y0, x1, y1 = eye.box
        rows = np.arange(y1 - y0)[:, None]
        m = np.zeros(avatar.image.shape[:2], bool)
        m[y0:y1, x0:x1] = (rows > eye.upper[None, :] + 1) & (rows < eye.lower[None, :] - 1)
        masks.append(m)
    eyes = np.logical_or(*masks)
    assert eyes.sum() > 100
    base = _luma(avatar.image[eyes])
    change = np.array([np.abs(_luma(f[eyes]) - base).mean() for f in frames])
    closed = change > 15  # the lid slid down over the eye
    assert closed.any(), "no blink in 10 s of speech"
    assert np.all((change < 1e-6) | closed | (change < 15)), "the eyes changed without blinking"
    runs = np.diff(np.concatenate([[0], closed.astype(int), [0]]))
    starts, ends = np.flatnonzero(runs == 1), np.flatnonzero(runs == -1)
    assert 1 <= len(starts) <= 6, f"{len(starts)} blinks in 10 s"
    assert all(e - s <= 0.3 * thg.fps for s, e in zip(starts, ends, strict=True)), "the eyes stayed shut"
    assert change[-3:].max() < 1e-6 or not closed[-1], "the eyes did not open again"
    assert (change[: thg.fps] < 1e-6).all(), "a sentence does not start with a blink"
    # the lid hides the dark pupil: at each blink's deepest frame the darkest tenth of the eye is lighter
    darkest = np.percentile(base, 10)
    for s, e in zip(starts, ends, strict=True):
        assert max(np.percentile(_luma(frames[i][eyes]), 10) for i in range(s, e)) > darkest + 4
    # the same sentence blinks at the same moments: a render is reproducible
    again = [np.abs(_luma(f[eyes]) - base).mean() for f in thg.render(avatar, speechlike(10.0))]
    assert np.array_equal(change, again)
    peak = frames[int(starts[0] + np.argmax(change[starts[0]:ends[0]]))]
    box = np.array([e.box for e in avatar.eyes])
    ey0, ey1 = box[:, 1].min() - 10, box[:, 3].max() + 10
    ex0, ex1 = box[:, 0].min() - 10, box[:, 2].max() + 10
    ARTIFACTS.mkdir(exist_ok=True)
    pair = np.concatenate([frames[0][ey0:ey1, ex0:ex1], peak[ey0:ey1, ex0:ex1]], 1)
    cv2.imwrite(str(ARTIFACTS / "lite-blink.png"), cv2.cvtColor(cv2.resize(pair, None, fx=3, fy=3), cv2.COLOR_RGB2BGR))


def test_blinks_can_be_turned_off(portrait):
    quiet = LiteTHG(LiteTHG.Options(blink_every_s=0))
    avatar = quiet.prepare(portrait)
    silence = Audio(np.zeros(16000 * 8, np.float32), 16000)
    assert all((f == avatar.image).all() for f in quiet.render(avatar, silence))


def test_options_are_checked():
    with pytest.raises(TalkerError, match="open_scale"):
        LiteTHG.Options(open_scale=3.0)
    with pytest.raises(TalkerError, match="blink"):
        LiteTHG.Options(blink_s=2.0)
