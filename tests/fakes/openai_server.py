"""A local HTTP server that speaks OpenAI's chat-completions protocol, with scripted replies.

    with OpenAIServer(Reply.text("Hi there."), Reply.error(500)) as server:
        client = OpenAI(base_url=server.base_url, api_key="x")
        ...
        server.requests[0].body["messages"]   # what the client sent

Each POST to ``/v1/chat/completions`` takes the next scripted ``Reply`` (``default`` once the script
is used up): a normal streamed answer (SSE, or one JSON body when the request has no ``stream``), a
stream that breaks off, a slow answer, an HTTP error or an unreadable body. ``GET /v1/models`` lists
``models``. Every request is recorded. Chunked transfer encoding is used so that a stream cut short is
visible to the client as a broken body, as it is with a real server dropping the connection.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. Use the constructors: ``text``, ``broken``, ``slow``, ``error``, ``garbage``."""

    kind: str = "text"
    pieces: list[str] = field(default_factory=lambda: ["Hello", " there."])
    status: int = 200
    message: str = ""  # the error message, for kind "error"
    delay: float = 0.0  # seconds before the status line
    retry_after: float | None = None  # seconds, sent as Retry-After(-ms) with an error
    piece_delay: float = 0.0  # seconds between streamed pieces

    @classmethod
    def text(cls, text: str | list[str], piece_delay: float = 0.0) -> Reply:
        """A normal answer; a string is streamed word by word, a list piece by piece."""
        return cls("text", _split(text), piece_delay=piece_delay)

    @classmethod
    def broken(cls, text: str | list[str] = "Half an ans") -> Reply:
        """Streams ``text``, then drops the connection without finishing the body."""
        return cls("broken", _split(text))

    @classmethod
    def slow(cls, text: str | list[str] = "Sorry I am late.", delay: float = 2.0) -> Reply:
        """Answers normally, but only after ``delay`` seconds."""
        return cls("text", _split(text), delay=delay)

    @classmethod
    def error(cls, status: int = 500, message: str = "internal error (scripted)",
              retry_after: float | None = 0.01) -> Reply:
        """An HTTP error. ``retry_after`` (sent as ``Retry-After-Ms``) keeps clients' back-off short in tests."""
        return cls("error", [], status=status, message=message, retry_after=retry_after)

    @classmethod
    def garbage(cls) -> Reply:
        """A 200 answer whose stream is not JSON."""
        return cls("garbage", [])


def _split(text: str | list[str]) -> list[str]:
    if isinstance(text, list):
        return text
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None


class ScriptedServer:
    """A threading HTTP server on 127.0.0.1 (a free port) that answers with scripted ``Reply``s.

    Subclasses say how a reply is encoded for their protocol (``_answer``)."""

    api_prefix = ""

    def __init__(self, *replies: Reply, default: Reply | None = None, models: tuple[str, ...] = ("fake-model",)):
        self._script: list[Reply] = list(replies)
        self.default = default or Reply.text("Hello there.")
        self.models = models
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.api_prefix

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in a slow reply
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- script
    def script(self, *replies: Reply) -> None:
        """Queue more replies; each answers one chat request, in order."""
        with self._lock:
            self._script.extend(replies)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.pop(0) if self._script else self.default

    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    # -- protocol
    def _answer(self, h: _Handler, req: Request, reply: Reply) -> None:
        raise NotImplementedError

    def _handler_class(self) -> type[_Handler]:
        server = self

        class Handler(_Handler):
            owner = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _request(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.owner._record(req)
        return req

    def do_GET(self) -> None:
        self.owner._answer(self, self._request(), Reply())

    def do_POST(self) -> None:
        req = self._request()
        reply = self.owner._next_reply()
        if reply.delay and self.owner._stop.wait(reply.delay):
            return
        try:
            self.owner._answer(self, req, reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a time-out test); nothing to answer

    # -- helpers for _answer
    def send_json(self, status: int, obj: Any, retry_after: float | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if retry_after is not None:
            self.send_header("Retry-After-Ms", str(int(retry_after * 1000)))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def start_chunked(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def chunk(self, data: str | bytes) -> None:
        data = data.encode() if isinstance(data, str) else data
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def sse(self, obj: Any) -> None:
        self.chunk(f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n")

    def pause(self, seconds: float) -> None:
        if seconds:
            time.sleep(seconds)


class OpenAIServer(ScriptedServer):
    """Speaks ``/v1/chat/completions`` (streamed or not) and ``/v1/models``."""

    api_prefix = "/v1"

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _answer(self, h: _Handler, req: Request, reply: Reply) -> None:
        if req.method == "GET":
            if req.path.rstrip("/").endswith("/models"):
                h.send_json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"}
                                                             for m in self.models]})
            else:
                h.send_json(404, {"error": {"message": f"no route {req.path}", "type": "not_found"}})
            return
        if not req.path.endswith("/chat/completions"):
            h.send_json(404, {"error": {"message": f"no route {req.path}", "type": "not_found"}})
            return
        body = req.body if isinstance(req.body, dict) else {}
        model = body.get("model", "fake-model")
        if reply.kind == "error":
            h.send_json(reply.status, {"error": {"message": reply.message, "type": "server_error",
                                                 "code": reply.status}}, reply.retry_after)
            return
        if not body.get("stream"):
            self._answer_whole(h, reply, model)
            return
        h.start_chunked()
        if reply.kind == "garbage":
            h.sse("{this is not json")
            h.end_chunks()
            return
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        h.sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]})
        for i, piece in enumerate(reply.pieces):
            if i:
                h.pause(reply.piece_delay)
            h.sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        if reply.kind == "broken":
            h.wfile.flush()
            h.connection.shutdown(2)  # drop the connection mid-body, with no closing chunk
            return
        h.sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        h.sse("[DONE]")
        h.end_chunks()

    def _answer_whole(self, h: _Handler, reply: Reply, model: str) -> None:
        text = "".join(reply.pieces)
        if reply.kind == "garbage":
            data = b"{this is not json"
        else:
            data = json.dumps({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        # a broken answer announces more than it sends
        h.send_header("Content-Length", str(len(data) + (100 if reply.kind == "broken" else 0)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
        h.close_connection = True
        if reply.kind == "broken":
            h.connection.shutdown(2)
