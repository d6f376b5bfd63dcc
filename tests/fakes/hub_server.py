"""A local HTTP server that answers like the Hugging Face hub's file endpoints, for download tests.

    with HubServer() as hub:
        hub.add("org/model", "model.bin", data, lfs=True)
        os.environ["HF_ENDPOINT"] = hub.url

``HEAD``/``GET /{repo}/resolve/{revision}/{path}`` answer as the hub does: ``X-Repo-Commit`` (the
commit a branch name resolves to), ``ETag``; a small (git) file is served there with its git blob
sha1 as ETag; an LFS file is a ``302`` to the LFS store on another host name (``localhost`` instead
of ``127.0.0.1``, so clients treat it as the CDN it stands for) with ``X-Linked-Etag`` (its sha256)
and ``X-Linked-Size``. The store honours ``Range`` requests (``206`` + ``Content-Range``).

Faults for tests: ``drop_after`` cuts the first GET of the store after that many bytes (the
connection closes mid-body, as a flaky network does); ``publish`` overrides the sha256 the hub
publishes for a file (so the download does not match it). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?:models/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_STORE = re.compile(r"^/lfs/(?P<sha>[0-9a-f]{64})$")


@dataclass
class Served:
    data: bytes
    lfs: bool
    sha256: str  # what the hub publishes (X-Linked-Etag); the real digest unless a test overrides it


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    range: str | None
    host: str


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()  # noqa: S324 - git's object id


class HubServer:
    def __init__(self, commit: str = COMMIT):
        self.commit = commit
        self.files: dict[tuple[str, str], Served] = {}
        self.requests: list[Seen] = []
        self.drop_after: int | None = None  # cut the next store GET after this many bytes
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True

    # -- set-up
    def add(self, repo: str, path: str, data: bytes, lfs: bool = False, publish: str | None = None) -> None:
        self.files[(repo, path)] = Served(data, lfs, publish or hashlib.sha256(data).hexdigest())

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def gets(self, what: str = "/lfs/") -> list[Seen]:
        return [r for r in self.requests if r.method == "GET" and what in r.path]

    # -- protocol
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                with hub._lock:
                    hub.requests.append(Seen(self.command, self.path, self.headers.get("Range"),
                                             self.headers.get("Host", "")))
                path = unquote(self.path.split("?", 1)[0])
                if m := _RESOLVE.match(path):
                    self._resolve(m["repo"], m["rev"], m["path"], body)
                elif m := _STORE.match(path):
                    self._store(m["sha"], body)
                else:
                    self._plain(404, b"not found")

            def _resolve(self, repo: str, rev: str, path: str, body: bool) -> None:
                f = hub.files.get((repo, path))
                if f is None or rev not in (hub.commit, "main", "master"):  # master: ModelScope's branch
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if f.lfs:
                    self.send_response(302)
                    self.send_header("Location", f"http://localhost:{hub.port}/lfs/{hashlib.sha256(f.data).hexdigest()}")
                    self.send_header("X-Repo-Commit", hub.commit)
                    self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                    self.send_header("X-Linked-Size", str(len(f.data)))
                    self.send_header("ETag", f'"{git_sha1(f.data[:64])}"')  # the pointer file's, as the hub does
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{git_sha1(f.data)}"')
                self.send_header("Content-Length", str(len(f.data)))
                self.end_headers()
                if body:
                    self.wfile.write(f.data)

            def _store(self, sha: str, body: bool) -> None:
                f = next((f for f in hub.files.values() if hashlib.sha256(f.data).hexdigest() == sha), None)
                if f is None:
                    self._plain(404, b"no such object")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and (m := re.match(r"bytes=(\d+)-", rng)):
                    start = int(m.group(1))
                part = f.data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(part)))
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
                self.end_headers()
                if not body:
                    return
                with hub._lock:
                    cut, hub.drop_after = hub.drop_after, None
                if cut is not None and cut < len(part):
                    self.wfile.write(part[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # mid-body: the client sees a short read
                    return
                self.wfile.write(part)

            def _plain(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
