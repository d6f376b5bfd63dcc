"""The checkpoint manager against a real HTTP server on 127.0.0.1 that serves ranges like the hub."""

import hashlib
import http.server
import threading

import pytest

from app_modules.checkpoints import CheckpointFile, CheckpointManager
from app_modules.errors import MissingWeightsError, TalkerError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class HubHandler(http.server.BaseHTTPRequestHandler):
    requests: list = []
    publish_sha = SHA

    def log_message(self, *a):
        pass

    def _head(self, start=0):
        self.requests.append((self.command, self.path, self.headers.get("Range")))
        if not self.path.endswith("/resolve/main/sub/model.bin"):
            self.send_response(404)
            self.end_headers()
            return None
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Linked-Etag", f'"{self.publish_sha}"')
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        return body

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = self._head(start)
        if body is not None:
            self.wfile.write(body)


@pytest.fixture()
def hub(monkeypatch):
    HubHandler.requests = []
    HubHandler.publish_sha = SHA
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield HubHandler
    server.shutdown()


def manager(tmp_path, **kw):
    f = CheckpointFile("demo", "model.bin", repo_id="org/repo", filename="sub/model.bin", **kw)
    return CheckpointManager(tmp_path, {"demo": (f,)}), f


def test_missing_file_names_the_file_and_the_command(tmp_path):
    ck, _ = manager(tmp_path)
    with pytest.raises(MissingWeightsError) as e:
        ck.require("demo", "model.bin")
    assert "model.bin" in str(e.value) and "python -m app_modules.cli download demo" in str(e.value)
    assert [f.name for f in ck.missing("demo")] == ["model.bin"]


def test_download_checks_the_published_sha256(tmp_path, hub):
    ck, f = manager(tmp_path)
    seen = []
    path = ck.download("demo", progress=lambda name, done, total: seen.append((done, total)))[0]
    assert path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert ck.require("demo", "model.bin") == path and ck.missing("demo") == []


def test_download_resumes_a_partial_file(tmp_path, hub):
    ck, f = manager(tmp_path)
    part = ck.local_path(f).with_name("model.bin.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:300_000])
    ck.download("demo")
    assert ck.local_path(f).read_bytes() == PAYLOAD
    assert ("GET", "/org/repo/resolve/main/sub/model.bin", "bytes=300000-") in hub.requests


def test_checksum_mismatch_removes_the_file(tmp_path, hub):
    hub.publish_sha = "0" * 64
    ck, f = manager(tmp_path)
    with pytest.raises(TalkerError, match="checksum mismatch"):
        ck.download("demo")
    assert not ck.local_path(f).exists() and not ck.local_path(f).with_name("model.bin.part").exists()


def test_pinned_checksum_wins(tmp_path, hub):
    ck, f = manager(tmp_path, sha256="f" * 64)
    with pytest.raises(TalkerError, match="checksum mismatch"):
        ck.download("demo")


def test_unreachable_hub_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    ck, f = manager(tmp_path)
    with pytest.raises(MissingWeightsError, match="could not download model.bin"):
        ck.download("demo")


def test_cli_download_unknown_backend(capsys):
    from app_modules.cli import main

    assert main(["download", "nonexistent"]) != 0
    assert "no downloadable weights for 'nonexistent'" in capsys.readouterr().err
