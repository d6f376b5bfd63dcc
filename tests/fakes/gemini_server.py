"""A local stand-in for the Gemini REST API (``models/M:streamGenerateContent?alt=sse`` and ``:generateContent``).

    with GeminiServer(Reply.text("Hi."), Reply.error(503)) as server:
        GeminiLLM(GeminiLLM.Options(base_url=server.base_url, api_key="k"))
        server.requests[0].body["contents"]

The same scripted ``Reply`` kinds as ``OpenAIServer``: normal, broken, slow, HTTP error, garbage.
"""

from __future__ import annotations

from tests.fakes.openai_server import Reply, Request, ScriptedServer, _Handler

__all__ = ["GeminiServer", "Reply"]

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


class GeminiServer(ScriptedServer):
    api_prefix = "/v1beta"

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if "generateContent" in r.path or "GenerateContent" in r.path]

    def _answer(self, h: _Handler, req: Request, reply: Reply) -> None:
        path = req.path.split("?")[0]
        if req.method != "POST" or not path.endswith(("GenerateContent", "generateContent")):
            h.send_json(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
            return
        if reply.kind == "error":
            h.send_json(reply.status, {"error": {"code": reply.status, "message": reply.message,
                                                 "status": _STATUS.get(reply.status, "UNKNOWN")}}, reply.retry_after)
            return
        if not path.endswith(":streamGenerateContent"):
            h.send_json(200, self._chunk("".join(reply.pieces), last=True))
            return
        h.start_chunked()
        if reply.kind == "garbage":
            h.sse("{not json")
            h.end_chunks()
            return
        for i, piece in enumerate(reply.pieces):
            if i:
                h.pause(reply.piece_delay)
            h.sse(self._chunk(piece, last=reply.kind != "broken" and i == len(reply.pieces) - 1))
        if reply.kind == "broken":
            h.wfile.flush()
            h.connection.shutdown(2)
            return
        h.end_chunks()

    @staticmethod
    def _chunk(text: str, last: bool) -> dict:
        cand = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if last:
            cand["finishReason"] = "STOP"
        return {"candidates": [cand], "modelVersion": "fake-gemini"}
