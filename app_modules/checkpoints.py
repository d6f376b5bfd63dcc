"""Where weights live, and how they get there.

Layout: ``checkpoints/<backend>/<file>``, one folder per backend, the file names as published
(see ``checkpoints/README.md``). ``python -m app_modules.cli download BACKEND`` fetches a backend's
files from the Hugging Face hub (``HF_ENDPOINT`` selects a mirror) or a plain URL, resuming a
partial ``.part`` file, with a progress bar, and checks each file's sha256: the pinned one where the
catalog has it, else the one the hub publishes for LFS files (``X-Linked-Etag``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app_modules.errors import MissingWeightsError, TalkerError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckpointFile:
    """One published file: where it comes from and where it goes under ``checkpoints/<backend>/``."""

    backend: str
    name: str  # local file name (or relative path) under checkpoints/<backend>/
    repo_id: str | None = None  # Hugging Face repo; None when ``url`` is set
    filename: str | None = None  # path inside the repo
    url: str | None = None  # a plain URL, for files not on the hub
    sha256: str | None = None  # pinned checksum, where known
    size_mb: int | None = None  # for the model manager's display only
    optional: bool = False  # e.g. the 512 model: the backend runs without it

    def source_url(self) -> str:
        if self.url:
            return self.url
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        return f"{endpoint}/{self.repo_id}/resolve/main/{self.filename}"


def _hf(backend: str, name: str, repo: str, filename: str | None = None, **kw) -> CheckpointFile:
    return CheckpointFile(backend, name, repo_id=repo, filename=filename or name, **kw)


# The files each backend needs. Backends not listed need none, or fetch through their own library
# (faster-whisper and transformers model names go through the hub cache).
CATALOG: dict[str, tuple[CheckpointFile, ...]] = {
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
    # Ditto's PyTorch release (digital-avatar/ditto-talkinghead), laid out as the hub repo
    "ditto": tuple(
        _hf("ditto", path, "digital-avatar/ditto-talkinghead", size_mb=mb)
        for path, mb in (("ditto_pytorch/models/appearance_extractor.pth", 4),
                         ("ditto_pytorch/models/motion_extractor.pth", 113),
                         ("ditto_pytorch/models/warp_network.pth", 183),
                         ("ditto_pytorch/models/decoder.pth", 222),
                         ("ditto_pytorch/models/stitch_network.pth", 1),
                         ("ditto_pytorch/models/lmdm_v0.4_hubert.pth", 192),
                         ("ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx", 1270),
                         ("ditto_cfg/v0.4_hubert_cfg_pytorch.pkl", 1))),
    "gfpgan": (
        CheckpointFile("gfpgan", "GFPGANv1.4.pth",
                       url="https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
                       size_mb=333),
    ),
    "gpt-sovits": (
        _hf("gpt-sovits", "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", "lj1995/GPT-SoVITS",
            "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt", size_mb=148),
        _hf("gpt-sovits", "s2G2333k.pth", "lj1995/GPT-SoVITS", "gsv-v2final-pretrained/s2G2333k.pth",
            size_mb=101),
    ),
    "piper": (
        _hf("piper", "en_US-lessac-medium.onnx", "rhasspy/piper-voices",
            "en/en_US/lessac/medium/en_US-lessac-medium.onnx", size_mb=61),
        _hf("piper", "en_US-lessac-medium.onnx.json", "rhasspy/piper-voices",
            "en/en_US/lessac/medium/en_US-lessac-medium.onnx.json"),
        _hf("piper", "zh_CN-huayan-medium.onnx", "rhasspy/piper-voices",
            "zh/zh_CN/huayan/medium/zh_CN-huayan-medium.onnx", size_mb=61, optional=True),
        _hf("piper", "zh_CN-huayan-medium.onnx.json", "rhasspy/piper-voices",
            "zh/zh_CN/huayan/medium/zh_CN-huayan-medium.onnx.json", optional=True),
    ),
}

ProgressFn = Callable[[str, int, int | None], None]  # (file name, bytes done, bytes total)


class CheckpointManager:
    """Finds, checks and downloads the files in ``CATALOG`` under one root folder."""

    def __init__(self, root: str | Path | None = None, catalog: dict[str, tuple[CheckpointFile, ...]] | None = None):
        self.root = Path(root or os.environ.get("TALKER_CHECKPOINTS", DEFAULT_ROOT))
        self.catalog = CATALOG if catalog is None else catalog

    def files(self, backend: str, include_optional: bool = True) -> tuple[CheckpointFile, ...]:
        return tuple(f for f in self.catalog.get(backend, ()) if include_optional or not f.optional)

    def local_path(self, f: CheckpointFile) -> Path:
        return self.root / f.backend / f.name

    def missing(self, backend: str) -> list[CheckpointFile]:
        return [f for f in self.files(backend, include_optional=False) if not self.local_path(f).is_file()]

    def require(self, backend: str, name: str, override: str | Path | None = None) -> Path:
        """The path of one file, or ``MissingWeightsError`` naming it and the command that fetches it.

        ``override`` is a user-given path (``--checkpoint``), checked instead of the catalog entry."""
        if override:
            p = Path(override)
            if not p.is_file():
                raise MissingWeightsError(f"checkpoint file not found: {p}")
            return p
        for f in self.catalog.get(backend, ()):
            if f.name == name:
                p = self.local_path(f)
                if p.is_file():
                    return p
                raise MissingWeightsError(
                    f"missing weights for {backend}: {p} -- fetch them with "
                    f"`python -m app_modules.cli download {backend}`")
        raise MissingWeightsError(f"{backend} has no checkpoint named {name!r}")

    def status(self) -> list[tuple[CheckpointFile, bool]]:
        return [(f, self.local_path(f).is_file()) for fs in self.catalog.values() for f in fs]

    def download(self, backend: str, include_optional: bool = False, progress: ProgressFn | None = None) -> list[Path]:
        if backend not in self.catalog:
            known = ", ".join(sorted(self.catalog))
            raise TalkerError(f"no downloadable weights for {backend!r}; backends with weights: {known}")
        return [self.fetch(f, progress) for f in self.files(backend, include_optional)]

    def fetch(self, f: CheckpointFile, progress: ProgressFn | None = None) -> Path:
        dest = self.local_path(f)
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        url = f.source_url()
        try:
            expected = f.sha256 or _published_sha256(url)
            _download_resuming(url, part, f.name, progress)
        except (urllib.error.URLError, OSError) as e:
            raise MissingWeightsError(
                f"could not download {f.name} from {url}: {getattr(e, 'reason', e)}. Check the network "
                f"(HF_ENDPOINT selects a hub mirror) or put the file at {dest} by hand") from e
        digest = _sha256(part)
        if expected and digest != expected:
            part.unlink()
            raise TalkerError(f"checksum mismatch for {f.name}: got {digest}, expected {expected}; "
                              "the partial file was removed, run the download again")
        part.rename(dest)
        return dest


def _published_sha256(url: str) -> str | None:
    """The hub publishes an LFS file's sha256 as its ETag; plain URLs publish nothing we can trust."""
    req = urllib.request.Request(url, method="HEAD")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        resp = opener.open(req, timeout=30)
        headers = resp.headers
    except urllib.error.HTTPError as e:  # the hub answers 302 to the LFS store
        if e.code not in (301, 302, 303, 307, 308):
            raise
        headers = e.headers
    etag = (headers.get("X-Linked-Etag") or "").strip('"').removeprefix("W/").strip('"')
    return etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _download_resuming(url: str, part: Path, label: str, progress: ProgressFn | None) -> None:
    from tqdm import tqdm

    done = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        resp = urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # the part file is already complete
            return
        raise
    with resp:
        if done and resp.status != 206:  # the server ignored the range: start over
            done = 0
        length = resp.headers.get("Content-Length")
        total = done + int(length) if length else None
        with open(part, "ab" if done else "wb") as out, tqdm(
            total=total, initial=done, unit="B", unit_scale=True, desc=label, disable=None
        ) as bar:
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if progress:
                    progress(label, done, total)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
