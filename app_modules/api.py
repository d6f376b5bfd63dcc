"""Talker over HTTP: the same stages and the same error messages as the web UI.

    python -m app_modules.api [--settings settings.yaml] [--set server.port=8000]

Endpoints (all under ``/api``; interactive docs at ``/docs``):

    GET  /api/backends     every backend by stage, whether it can run here and why not
    GET  /api/voices       the voices the configured TTS and the voice-cloning backend offer
    POST /api/transcribe   audio file -> {"text"}
    POST /api/speak        text -> audio/wav
    POST /api/render       portrait + text -> video/mp4 (the avatar reads the text)
    POST /api/chat         {"text", "history"} -> NDJSON stream of reply deltas (LLM only)
    POST /api/turn         portrait + (text | audio) -> NDJSON stream of turn events
    GET  /api/files/{job}/{name}   a file a turn made (per-sentence videos, answer.mp4, answer.srt)

Errors are JSON ``{"error": message, "stage": ...}`` with the UI's wording: 4xx for bad input (400,
401 login, 413 too large, 422 a malformed request), 5xx only for the server's faults (503 busy or a
backend that cannot run here, 502 a stage that failed). In the NDJSON streams nothing follows an
``error`` event.

A login is required when ``server.api_token`` / ``TALKER_API_TOKEN`` (``Authorization: Bearer``) or
``server.auth`` users (``Authorization: Basic``) are set; it is checked before a body is read, and
bodies are counted as they stream in (``security.Guard``). Uploaded file names are never used: uploads
are stored under fixed names in a fresh per-request folder. Turns wait for the one server-wide render
limit (``server.concurrency``; the web UI shares it when it serves this API too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from app_modules import config, media, registry, tls
from app_modules import options as declared
from app_modules.errors import (
    BackendUnavailableError,
    BadInputError,
    BusyError,
    MissingWeightsError,
    StageError,
    TalkerError,
)
from app_modules.history import ChatHistory, Turn
from app_modules.pipeline import Pipeline, require_length
from app_modules.security import Credentials, Guard, check_exposure
from app_modules.sweep import Sweeper
from app_modules.types import (
    Progress,
    SentenceAudio,
    SentenceVideo,
    StageFailed,
    TextDelta,
    Transcript,
    TurnResult,
)

PipelineFactory = Callable[..., Pipeline]  # (settings, need_asr=, need_video=, llm=) -> Pipeline
JOB_TTL_S = 3600  # a turn's files stay downloadable this long
_JOB = re.compile(r"^[0-9a-f]{32}$")
_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(mp4|wav|srt)$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$|^(auto)?$")
_MEDIA = {".mp4": "video/mp4", ".wav": "audio/wav", ".srt": "application/x-subrip"}


class ChatRequest(BaseModel):
    text: str = Field(..., description="the user's message")
    history: list[tuple[str, str]] = Field(default_factory=list, description="earlier (user, assistant) turns")
    system_prompt: str | None = Field(None, description="persona; the server's default when absent")


def _status(e: TalkerError) -> int:
    if isinstance(e, BadInputError):
        return 400
    if isinstance(e, (MissingWeightsError, BackendUnavailableError, BusyError)):
        return 503
    if isinstance(e, StageError):
        return 502
    return 500


def _error(status: int, message: str, stage: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "stage": stage}, status_code=status, headers=headers)


def jobs_folder(settings: config.Settings) -> Path:
    """Where the API's job folders go (beside the web UI's session folders): one per turn, an hour each."""
    from app_modules.ui.session import work_root

    return work_root(settings).parent / "talker-api"


def runtime_factory(runtime: Any) -> PipelineFactory:
    """Pipelines over a ``Runtime``'s shared backends (each loaded once per process) and its render limit."""

    def factory(_settings: config.Settings, *, need_asr: bool = False, need_video: bool = True,
                llm: str | None = None) -> Pipeline:
        return runtime.pipeline(need_asr=need_asr, need_video=need_video, llm=llm)

    return factory


def guard(app: FastAPI, settings: config.Settings) -> None:
    """Put ``security.Guard`` in front of ``app``: the API's login, checked before a body is read, and every
    body's size, counted as it streams."""
    app.add_middleware(Guard, credentials=Credentials.of(settings),
                       protected=lambda path: path == "/api" or path.startswith("/api/"),
                       max_upload=settings.server.max_upload_mb * (1 << 20) + (64 << 10),
                       max_body=settings.limits.request_kb * 1024)


def create_app(settings: config.Settings, pipeline_factory: PipelineFactory | None = None,
               runtime: Any = None, sweep: bool = True) -> FastAPI:
    """The FastAPI app. ``pipeline_factory`` (tests) replaces the backends the settings name; ``runtime``
    (the web UI's) shares its backends and its render limit; ``sweep``: remove stale job folders."""
    if pipeline_factory is None:
        if runtime is None:
            from app_modules.ui.runtime import Runtime

            runtime = Runtime(settings)
        pipeline_factory = runtime_factory(runtime)
    factory = pipeline_factory
    limits = settings.limits
    max_bytes = settings.server.max_upload_mb * 1024 * 1024
    jobs_root = jobs_folder(settings)
    jobs_root.mkdir(parents=True, exist_ok=True)
    mine: set[Path] = set()  # the jobs of this process: removed when it stops
    sweeper = Sweeper([jobs_root], JOB_TTL_S, every_s=300) if sweep else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if sweeper is not None:
            sweeper.start()
        yield
        if sweeper is not None:
            sweeper.stop()
        for job in list(mine):
            shutil.rmtree(job, ignore_errors=True)

    app = FastAPI(title="Talker API", version="1.0",
                  description="Talking-avatar stages over HTTP: ASR, LLM, TTS and the talking head.",
                  lifespan=lifespan)
    guard(app, settings)

    @app.exception_handler(TalkerError)
    async def talker_error(_request: Request, e: TalkerError) -> JSONResponse:
        headers = {"Retry-After": "30"} if isinstance(e, BusyError) else None
        return _error(_status(e), str(e), getattr(e, "stage", None), headers)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, e: HTTPException) -> JSONResponse:
        return JSONResponse({"error": e.detail, "stage": None}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, e: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ())[1:]) or 'body'}: {err.get('msg')}"
                             for err in e.errors()[:5])
        return _error(422, f"the request is not valid: {problems}")

    # --------------------------------------------------------------------------------- helpers
    def new_job() -> Path:
        jobs_root.mkdir(parents=True, exist_ok=True)
        job = jobs_root / uuid.uuid4().hex
        job.mkdir(mode=0o700)
        mine.add(job)
        return job

    def drop_job(job: Path) -> None:
        shutil.rmtree(job, ignore_errors=True)
        mine.discard(job)

    def save_upload(upload: UploadFile, job: Path, name: str, what: str) -> Path:
        """Store an upload as ``job/name`` (the client's file name is ignored), enforcing the size limit."""
        dest = job / name
        size = 0
        with open(dest, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, f"the {what} is too large: the limit is "
                                             f"{settings.server.max_upload_mb} MB")
                out.write(chunk)
        if size == 0:
            raise BadInputError(f"the {what} is empty (zero bytes)")
        return dest

    def load_portrait(upload: UploadFile, job: Path):
        path = save_upload(upload, job, "portrait.upload", "image")
        return media.limit_size(media.load_image(path, limits.image_pixels, limits.min_face_px))

    def load_speech(upload: UploadFile, job: Path):
        path = save_upload(upload, job, "speech.upload", "audio file")
        audio = media.load_audio(path, 16000, limits.audio_seconds)
        media.require_sound(audio, "the audio file")
        return audio

    def check_text(text: str | None, what: str) -> None:
        if text:
            require_length(text, limits.text_chars, what)

    def refuse_if_busy(pipe: Pipeline) -> None:
        if pipe.slots is not None and pipe.slots.full():
            raise BusyError(f"the server is busy: {pipe.slots.running} turn(s) rendering and {pipe.slots.waiting} "
                            "waiting, the most it takes; try again in a minute")

    def file_url(job: Path, path: Path | None) -> str | None:
        if path is None:
            return None
        return f"/api/files/{job.name}/{path.relative_to(job).as_posix().replace('/', '_')}"

    def publish(job: Path, path: Path) -> Path:
        # turn files live in job/turn-xxx/; flatten them so a URL is job + one safe name
        # (a hard link, not a move: the pipeline still reads the originals to join the answer)
        flat = job / path.relative_to(job).as_posix().replace("/", "_")
        if flat != path and not flat.exists():
            try:
                os.link(path, flat)
            except OSError:
                shutil.copyfile(path, flat)
        return flat

    def run_to_end(pipe: Pipeline, job: Path, **kwargs) -> TurnResult:
        for ev in pipe.turn(ChatHistory(), job, **kwargs):
            if isinstance(ev, StageFailed):
                raise _stage_failed(ev)
            if isinstance(ev, TurnResult):
                return ev
        raise TalkerError("the turn ended without a result")

    # ------------------------------------------------------------------------------- endpoints
    @app.get("/api/backends")
    def backends() -> dict[str, Any]:
        out: dict[str, Any] = {"selected": {st: settings.backend(st) for st in registry.STAGES}, "stages": {}}
        for s in registry.BACKENDS:
            why = registry.why_unavailable(s)
            out["stages"].setdefault(s.stage, []).append(
                {"name": s.name, "description": s.description, "available": why is None, "reason": why})
        from app_modules.auto import resolve  # what runs for each stage: the pinned backend, or auto's pick

        out["resolved"] = {st: {k: getattr(c, k) for k in ("name", "label", "reason", "better")}
                           for st in registry.STAGES for c in [resolve(settings, st)]}
        return out

    @app.get("/api/voices")
    def voices() -> dict[str, Any]:
        from app_modules.ui import voices as v

        cloned, why = v.cloned_voices(settings)
        return {"tts": settings.tts,
                "roles": {role: v.role_tts_options(settings, role) for role in v.ROLES},
                "cloned": {"backend": v.CLONE_TTS, "voices": cloned, "unavailable": why}}

    @app.post("/api/transcribe")
    def transcribe(audio: Annotated[UploadFile, File(description="speech in any format ffmpeg reads")],
                   language: Annotated[str, Form(description="e.g. en, zh; empty to detect")] = "") -> dict[str, str]:
        if not _LANGUAGE.match(language):
            raise BadInputError(f"unknown language {language[:20]!r}: use a code such as en or zh, or leave it "
                                "empty to detect")
        job = new_job()
        try:
            speech = load_speech(audio, job)
            pipe = factory(settings, need_asr=True, need_video=False, llm="read-aloud")
            refuse_if_busy(pipe)
            ticket = pipe.slots.ticket() if pipe.slots is not None else None
            try:
                if ticket is not None:
                    ticket.wait()
                text = pipe.stages.asr.transcribe(speech, language or settings.pipeline.language or None).strip()
            finally:
                if ticket is not None:
                    ticket.release()
        finally:
            drop_job(job)
        if not text:
            raise BadInputError("no speech detected in the recording; speak closer to the microphone")
        return {"text": text}

    @app.post("/api/speak", responses={200: {"content": {"audio/wav": {}}}}, response_class=Response)
    def speak(text: Annotated[str, Form(description="what to say")]) -> Response:
        if not text.strip():
            raise BadInputError("the text is empty: type something for the avatar to say")
        check_text(text, "the text")
        pipe = factory(settings, need_asr=False, need_video=False, llm="read-aloud")
        refuse_if_busy(pipe)
        job = new_job()
        try:
            result = run_to_end(pipe, job, text=text)
            data = Path(result.audio).read_bytes()
        finally:
            drop_job(job)
        return Response(data, media_type="audio/wav")

    @app.post("/api/render", responses={200: {"content": {"video/mp4": {}}}}, response_class=Response)
    def render(image: Annotated[UploadFile, File(description="a portrait with one face")],
               text: Annotated[str, Form(description="what the avatar says")]) -> Response:
        if not text.strip():
            raise BadInputError("the text is empty: type something for the avatar to say")
        check_text(text, "the text")
        job = new_job()
        try:
            face = load_portrait(image, job)
            pipe = factory(settings, need_asr=False, need_video=True, llm="read-aloud")
            refuse_if_busy(pipe)
            result = run_to_end(pipe, job, text=text, image=face)
            data = Path(result.video).read_bytes()
        finally:
            drop_job(job)
        return Response(data, media_type="video/mp4")

    @app.post("/api/chat", responses={200: {"content": {"application/x-ndjson": {}}}})
    def chat(body: ChatRequest) -> StreamingResponse:
        if not body.text.strip():
            raise BadInputError("the text is empty: type something for the avatar to answer")
        check_text(body.text, "the text")
        check_text(body.system_prompt, "the persona")
        llm = factory(settings, need_asr=False, need_video=False).stages.llm
        prompt = settings.pipeline.system_prompt if body.system_prompt is None else body.system_prompt
        history = ChatHistory(prompt, [Turn(u, a) for u, a in body.history])
        messages = history.messages(body.text, llm.count_tokens, getattr(llm, "context_tokens", None))

        def events() -> Iterator[bytes]:
            reply = ""
            try:
                for piece in llm.stream(messages):
                    piece = piece[:limits.answer_chars - len(reply)]
                    reply += piece
                    yield _line({"type": "delta", "text": piece})
                    if len(reply) >= limits.answer_chars:
                        break
            except TalkerError as e:
                yield _line({"type": "error", "stage": getattr(e, "stage", "llm"), "message": str(e)})
                return  # nothing follows an error
            yield _line({"type": "done", "reply": reply})

        return StreamingResponse(events(), media_type="application/x-ndjson")

    @app.post("/api/turn", responses={200: {"content": {"application/x-ndjson": {}}}})
    def turn(image: Annotated[UploadFile, File(description="a portrait with one face")],
             text: Annotated[str, Form(description="the question, or empty when audio is given")] = "",
             audio: Annotated[UploadFile | None, File(description="the question, spoken")] = None,
             history: Annotated[str, Form(description="JSON list of earlier [user, assistant] turns")] = "[]",
             system_prompt: Annotated[str | None, Form()] = None) -> StreamingResponse:
        try:
            turns = [Turn(str(u), str(a)) for u, a in json.loads(history or "[]")]
        except (ValueError, TypeError) as e:
            raise BadInputError(f"history must be a JSON list of [user, assistant] pairs: {e}") from e
        check_text(text, "the text")
        check_text(system_prompt, "the persona")
        job = new_job()
        try:
            face = load_portrait(image, job)
            speech = load_speech(audio, job) if audio is not None and audio.filename else None
            if speech is None and not text.strip():
                raise BadInputError("nothing to answer: send text or an audio file")
            pipe = factory(settings, need_asr=speech is not None, need_video=True)
            refuse_if_busy(pipe)
            pipe.avatar(face)  # a portrait without a face is a 400 now, not an error inside the stream
        except BaseException:
            drop_job(job)
            raise
        prompt = settings.pipeline.system_prompt if system_prompt is None else system_prompt
        chat_history = ChatHistory(prompt, turns)

        def events() -> Iterator[bytes]:
            stream = pipe.turn(chat_history, job, text=text if speech is None else None, audio=speech, image=face)
            try:
                for ev in stream:
                    yield _line(_event_json(ev, job, publish, file_url))
                    if isinstance(ev, StageFailed):
                        return  # nothing follows an error
            finally:
                stream.close()

        return StreamingResponse(events(), media_type="application/x-ndjson")

    @app.get("/api/files/{job}/{name}")
    def files(job: str, name: str) -> FileResponse:
        # both parts are checked against strict patterns, so a request can never leave jobs_root
        if not _JOB.match(job) or not _FILE.match(name):
            raise HTTPException(404, "no such file")
        path = jobs_root / job / name
        # never through a link: only the plain files a turn wrote are served
        if path.is_symlink() or (path.parent.is_symlink()) or not path.is_file():
            raise HTTPException(404, "no such file (files are kept for an hour)")
        return FileResponse(path, media_type=_MEDIA[path.suffix])

    return app


def _stage_failed(ev: StageFailed) -> TalkerError:
    if ev.stage == "input" or ev.bad_input:
        return BadInputError(ev.message)
    if ev.stage == "busy":
        return BusyError(ev.message)
    return StageError(ev.stage, ev.message)


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()


def _event_json(ev: Any, job: Path, publish: Callable, url: Callable) -> dict[str, Any]:
    if isinstance(ev, Transcript):
        return {"type": "transcript", "text": ev.text}
    if isinstance(ev, TextDelta):
        return {"type": "delta", "text": ev.text}
    if isinstance(ev, SentenceAudio):
        return {"type": "sentence_audio", "index": ev.index, "text": ev.text,
                "url": url(job, publish(job, ev.path)), "duration": ev.audio.duration}
    if isinstance(ev, SentenceVideo):
        return {"type": "sentence_video", "index": ev.index, "text": ev.text,
                "url": url(job, publish(job, ev.path)), "duration": ev.duration}
    if isinstance(ev, TurnResult):
        return {"type": "result", "reply": ev.reply, "timings": ev.timings,
                **{k: url(job, publish(job, p)) if p else None
                   for k, p in (("video", ev.video), ("audio", ev.audio), ("subtitles", ev.subtitles))}}
    if isinstance(ev, StageFailed):
        return {"type": "error", "stage": ev.stage, "message": ev.message}
    if isinstance(ev, Progress):
        return {"type": "progress", "stage": ev.stage, "message": ev.message, "fraction": ev.fraction}
    return {"type": type(ev).__name__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app_modules.api", description="Talker HTTP API")
    config.add_arguments(p, example="server.port=8000 --set llm=read-aloud")
    args = p.parse_args(argv)
    try:
        settings = config.from_args(args)
    except TalkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    try:
        check_exposure(settings, token_counts=True)
        declared.check_settings(settings)
        ssl = dict(zip(("ssl_certfile", "ssl_keyfile"), tls.certificate(settings), strict=True)) \
            if settings.server.https else {}
    except TalkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.server.host, port=settings.server.port, **ssl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
