"""The web UI for another device on the network: ``server.https`` with a self-signed certificate made for
this machine's address, so a browser there gets a secure context (and with it the microphone); and the
conversation surviving a page reload and a server restart (kept in the browser's local storage).

The real ``python webui.py``, bound to this machine's network address (so with a login), and Debian's
chromium, told to accept the self-signed certificate as a visitor would after its warning."""

from __future__ import annotations

import contextlib
import socket
import ssl

import pytest

pytest.importorskip("selenium")
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.webui import HAVE_CHROMIUM, chromium, free_port, running_webui

pytestmark = [pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Debian's chromium and chromium-driver"),
              pytest.mark.timeout(420)]
USER, PASSWORD = "bob", "builder-42"


def lan_address() -> str | None:
    """This machine's address on its network (the one a phone would use), if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = s.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("https")
    host = lan_address()
    if host is None:
        pytest.skip("this machine has no network address besides loopback")
    overrides = ["llm=read-aloud", "tts=espeak", "thg=lite", "server.https=true", f"server.auth.{USER}={PASSWORD}",
                 f"pipeline.workdir={work / 'work'}"]
    env = {"XDG_CACHE_HOME": str(work / "cache")}  # the certificate and the browser-state key live here
    return work, host, free_port(), overrides, env


def _login(driver, url: str) -> None:
    driver.get(url)
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=password]")
               or d.find_elements(By.CSS_SELECTOR, "button[role=tab]"))
    if driver.find_elements(By.CSS_SELECTOR, "input[type=password]"):
        driver.find_elements(By.CSS_SELECTOR, "input")[0].send_keys(USER)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(PASSWORD)
        next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip().lower() == "login").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#builtin-chat"))


def _chat(driver) -> str:
    return driver.find_element(By.ID, "builtin-chat").text.lower()


def test_https_gives_a_secure_context_and_the_conversation_survives_reload_and_restart(setup):
    from cryptography import x509

    work, host, port, overrides, env = setup
    question = "Remember the lighthouse by the sea."
    driver = chromium(extra=("--ignore-certificate-errors",))
    try:
        with running_webui(work, overrides, env=env, host=host, port=port, https=True) as (url, _log):
            assert url.startswith(f"https://{host}:")
            pem = ssl.get_server_certificate((host, port))
            cert = x509.load_pem_x509_certificate(pem.encode())
            alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert host in [str(a) for a in alt.get_values_for_type(x509.IPAddress)]
            assert cert.issuer == cert.subject  # made here, self-signed

            _login(driver, url)
            # what a phone's browser needs before it offers the microphone
            assert driver.execute_script("return window.isSecureContext") is True
            assert driver.execute_script("return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)")

            box = driver.find_element(By.CSS_SELECTOR, "#builtin-text textarea")
            box.send_keys(question)
            driver.find_element(By.ID, "builtin-send").click()
            WebDriverWait(driver, 180).until(lambda d: _chat(d).count("lighthouse") >= 2)  # asked and answered
            WebDriverWait(driver, 60).until(
                lambda d: d.find_element(By.ID, "builtin-status").text.startswith("Done"))

            driver.refresh()  # a reload: a new Gradio session, the same browser
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#builtin-chat"))
            WebDriverWait(driver, 60).until(lambda d: _chat(d).count("lighthouse") >= 2)
        # the server stops and starts again (same port, same machine): the conversation comes back
        with running_webui(work, overrides, env=env, host=host, port=port, https=True) as (url, _log):
            _login(driver, url)
            WebDriverWait(driver, 60).until(lambda d: _chat(d).count("lighthouse") >= 2)
            # and it is a conversation the server knows again: the next turn follows it, undo removes it
            driver.find_element(By.ID, "builtin-undo").click()
            WebDriverWait(driver, 60).until(lambda d: "lighthouse" not in _chat(d))
    finally:
        driver.quit()
