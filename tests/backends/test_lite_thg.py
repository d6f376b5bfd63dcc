"""The offline CPU talking head: frame count, silence, no face, and many sessions at once."""

import threading

import numpy as np
import pytest

from app_modules.errors import BadInputError
from app_modules.types import Audio
from THG.lite_thg import LiteTHG, mouth_openness


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
