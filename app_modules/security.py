"""Who may use a server that others can reach, and how much one request may send.

* ``check_exposure``: listening beyond this machine without a login is refused at start.
* ``Credentials``: the operator's users (``server.auth``, ``TALKER_AUTH``) and the API's bearer token,
  compared in constant time.
* ``Guard``: ASGI middleware in front of everything. It checks the login of the protected paths (the
  HTTP API) from the headers alone, before a byte of the body is read, and counts the body as it
  streams in: uploads beyond ``server.max_upload_mb`` and other bodies beyond ``limits.request_kb`` are
  refused with 413 whether or not the client sent a Content-Length (a chunked upload is cut off at the
  limit, not stored and then refused).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

from app_modules.config import Settings
from app_modules.errors import TalkerError

REALM = "Talker"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, token_counts: bool = False, env: Mapping[str, str] | None = None) -> None:
    """Refuse to listen beyond loopback with no login, unless the operator opted out in so many words.
    ``token_counts``: the API alone, where the bearer token is a login."""
    server = settings.server
    if is_loopback(server.host) or server.allow_no_auth:
        return
    if server.users(env) or (token_counts and server.token(env)):
        return
    raise TalkerError(
        f"refusing to listen on {server.host} without a login: anyone who can reach this machine could use it, "
        "its GPU and its API keys. Set a login (--set server.auth.NAME=PASSWORD, or TALKER_AUTH=NAME:PASSWORD in "
        "the environment), or open it to everyone in so many words with --set server.allow_no_auth=true")


class Credentials:
    """The operator's users and the API's bearer token."""

    def __init__(self, users: Mapping[str, str] | None = None, token: str = ""):
        self.users = dict(users or {})
        self.token = token

    @classmethod
    def of(cls, settings: Settings) -> Credentials:
        return cls(settings.server.users(), settings.server.token())

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.token)

    def check_password(self, user: str, password: str) -> bool:
        """Constant time in the password; Gradio's login calls this too."""
        want = self.users.get(user)
        # compare against something even for an unknown user, so timing does not tell which users exist
        ok = hmac.compare_digest((want or "\0" * 16).encode(), (password or "").encode())
        return ok and want is not None

    def check_header(self, authorization: str | None) -> bool:
        """``Authorization: Bearer <api_token>`` or ``Basic <user:password>``."""
        if not self.enabled:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self.token:
            return hmac.compare_digest(value.encode(), self.token.encode())
        if scheme == "basic" and self.users:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return self.check_password(user, password)
        return False

    def challenge(self) -> str:
        schemes = (["Bearer"] if self.token else []) + ([f'Basic realm="{REALM}"'] if self.users else [])
        return ", ".join(schemes)


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: the login of ``protected`` paths from the headers, then the body's size as it streams."""

    def __init__(self, app: Any, credentials: Credentials, protected: Callable[[str], bool],
                 max_upload: int, max_body: int):
        self.app = app
        self.credentials = credentials
        self.protected = protected
        self.max_upload = max_upload
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.protected(scope.get("path", "")) and not self.credentials.check_header(headers.get("authorization")):
            await _reply(send, 401, "a login is required: a valid bearer token (Authorization: Bearer <token>), "
                                    "or Basic with a server.auth user and password",
                         {"www-authenticate": self.credentials.challenge()})
            return
        upload = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.max_upload if upload else self.max_body
        what = (f"the upload is too large: the limit is {self.max_upload // (1 << 20)} MB (server.max_upload_mb)"
                if upload else f"the request is too large: the limit is {self.max_body // 1024} kB (limits.request_kb)")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _reply(send, 413, what)
            return
        state = {"seen": 0, "over": False, "started": False, "read": False}

        async def counted_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                state["read"] = not message.get("more_body", False)
                if state["seen"] > limit:
                    state["over"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: dict) -> None:
            if state["over"]:
                return  # whatever the app answers to a cut-off body, the client gets the 413
            if message["type"] == "http.response.start":
                state["started"] = True
                if not state["read"]:
                    # answered before the body was read (a 401, a 404): close the connection, or the server
                    # would read the rest of an upload of any size only to throw it away
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await _reply(send, 413, what)


async def _reply(send: Callable, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps({"error": message, "stage": None}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items() if v]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
