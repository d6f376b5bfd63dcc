"""Audio and video I/O: decoding any file ffmpeg reads, resampling, wav writing, frame-to-mp4
encoding, concatenation, subtitles and muxing. One place knows how ffmpeg is called."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from app_modules.errors import BadInputError, TalkerError
from app_modules.text import ends_sentence
from app_modules.types import Audio, WordTiming

# Below this RMS (about -50 dBFS) a recording holds no speech worth transcribing.
SILENCE_RMS = 0.003


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        raise TalkerError("ffmpeg not found: install it (apt-get install ffmpeg)") from None


def ffmpeg_path(p: str | Path) -> str:
    """A local file as ffmpeg must be given it: absolute, behind ``file:`` so no part of the name
    (a colon, a leading dash) is read as a protocol or an option."""
    return "file:" + Path(p).resolve().as_posix()


def _run(args: Sequence[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True)
    if proc.returncode != 0:
        raise TalkerError(f"{what} failed: {proc.stderr.decode(errors='replace').strip()[-500:]}")
    return proc


# ---------------------------------------------------------------------------------------------- audio

def load_audio(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = None) -> Audio:
    """Decode any file ffmpeg reads to mono float32 at ``sample_rate``. With ``max_seconds``, no more than
    that is decoded (a long file costs no memory) and a longer recording is refused."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"audio file not found: {p}")
    if p.stat().st_size == 0:
        raise BadInputError(f"the audio file {p.name} is empty (zero bytes)")
    limit = ["-t", f"{max_seconds + 0.5:.3f}"] if max_seconds else []
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", ffmpeg_path(p), *limit,
         "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), "-"], capture_output=True)
    if proc.returncode != 0:
        raise BadInputError(f"cannot read the audio file {p.name}: it is corrupt or not audio")
    samples = np.frombuffer(proc.stdout, dtype=np.float32).copy()
    if samples.size == 0:
        raise BadInputError(f"the audio file {p.name} holds no audio samples")
    audio = Audio(samples, sample_rate)
    require_duration(audio, max_seconds)
    return audio


def require_duration(audio: Audio, max_seconds: float | None, what: str = "the recording") -> None:
    if max_seconds and audio.duration > max_seconds:
        raise BadInputError(f"{what} is longer than {max_seconds:g} s, the most this server takes "
                            "(limits.audio_seconds): ask a shorter question")


def from_array(samples: np.ndarray, sample_rate: int) -> Audio:
    """Browser and library audio (int16 or float, mono or stereo (n, ch)) as mono float32."""
    a = np.asarray(samples)
    # scale integers first: a mean of int16 channels is float64 and would keep the int16 range
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif a.dtype.kind == "u":
        a = (a.astype(np.float32) - 128.0) / 128.0
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    return Audio(a.astype(np.float32), int(sample_rate))


def resample(audio: Audio, sample_rate: int) -> Audio:
    if audio.sample_rate == sample_rate:
        return audio
    from scipy.signal import resample_poly

    f = Fraction(sample_rate, audio.sample_rate)
    out = resample_poly(audio.samples.astype(np.float64), f.numerator, f.denominator)
    return Audio(out.astype(np.float32), sample_rate)


def rms(audio: Audio) -> float:
    return float(np.sqrt(np.mean(np.square(audio.samples, dtype=np.float64)))) if audio.samples.size else 0.0


def require_sound(audio: Audio, what: str = "the recording") -> None:
    if audio.duration < 0.1:
        raise BadInputError(f"{what} is too short ({audio.duration:.2f} s): record at least a second")
    if rms(audio) < SILENCE_RMS:
        raise BadInputError(f"no speech detected: {what} is silent; check the microphone and try again")


def normalize(audio: Audio, sample_rate: int = 24000, peak: float = 0.9) -> Audio:
    """One format for the later stages: mono float32, fixed rate, peak-normalised."""
    a = resample(audio, sample_rate)
    m = float(np.max(np.abs(a.samples))) if a.samples.size else 0.0
    samples = a.samples * (peak / m) if m > 1e-6 else a.samples
    return Audio(samples.astype(np.float32), sample_rate)


def pad_to_frames(audio: Audio, fps: int) -> Audio:
    """Pad with silence to a whole number of video frames, so audio and video lengths agree exactly."""
    n_frames = max(1, math.ceil(audio.duration * fps - 1e-9))
    want = int(round(n_frames * audio.sample_rate / fps))
    if want <= len(audio.samples):
        return audio
    return Audio(np.pad(audio.samples, (0, want - len(audio.samples))), audio.sample_rate)


def frame_count(audio: Audio, fps: int) -> int:
    return max(1, math.ceil(audio.duration * fps - 1e-9))


def concat_audio(parts: Iterable[Audio]) -> Audio:
    parts = list(parts)
    if not parts:
        raise TalkerError("nothing to concatenate")
    rate = parts[0].sample_rate
    return Audio(np.concatenate([resample(p, rate).samples for p in parts]), rate)


def write_wav(audio: Audio, path: str | Path) -> Path:
    import soundfile as sf

    p = Path(path)
    sf.write(str(p), np.clip(audio.samples, -1.0, 1.0), audio.sample_rate, subtype="PCM_16")
    return p


# ---------------------------------------------------------------------------------------------- video

class VideoWriter:
    """Frames in, an H.264 mp4 out (with an audio track when ``audio_path`` is given).

    Frames are piped to ffmpeg as they arrive, so encoding overlaps rendering."""

    def __init__(self, path: str | Path, fps: int, audio_path: str | Path | None = None):
        self.path = Path(path)
        self.fps = fps
        self.audio_path = audio_path
        self._proc: subprocess.Popen | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def _start(self, w: int, h: int) -> None:
        args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(self.fps), "-i", "-"]
        if self.audio_path:
            args += ["-i", ffmpeg_path(self.audio_path)]
        # yuv420p needs even sizes; the filter crops a stray pixel rather than failing
        args += ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
                 "-crf", "20", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
        if self.audio_path:
            args += ["-c:a", "aac", "-b:a", "128k", "-map", "0:v:0", "-map", "1:a:0"]
        args.append(ffmpeg_path(self.path))
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self._size = (w, h)

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._proc is None:
            self._start(w, h)
        elif (w, h) != self._size:
            raise TalkerError(f"frame size changed from {self._size} to {(w, h)} inside one video")
        assert self._proc and self._proc.stdin
        self._proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.frames += 1

    def close(self) -> Path:
        if self._proc is None:
            raise TalkerError("no frames were rendered")
        assert self._proc.stdin
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        if self._proc.wait() != 0:
            self.path.unlink(missing_ok=True)
            raise TalkerError(f"video encoding failed: {err.strip()[-500:]}")
        return self.path

    def abort(self) -> None:
        """Stop encoding and remove the half-written file."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.path.unlink(missing_ok=True)


def concat_videos(parts: Sequence[Path], audio_path: Path, out: Path, subtitles: Path | None = None) -> Path:
    """Join per-sentence videos (video streams copied) under the whole answer's audio track.

    The audio is re-encoded from one wav rather than concatenated as AAC, whose per-segment
    priming samples would otherwise drift the lips off the sound over a long answer."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file {concat_quote(p.resolve().as_posix())}\n" for p in parts), encoding="utf-8")
    args = ["-f", "concat", "-safe", "0", "-i", ffmpeg_path(listing), "-i", ffmpeg_path(audio_path),
            "-map", "0:v:0", "-map", "1:a:0"]
    if subtitles is not None:
        style = "FontSize=18,Outline=1,MarginV=20"
        args += ["-vf", f"subtitles=filename={filter_value(subtitles.resolve().as_posix())}"
                        f":force_style={filter_value(style)}",
                 "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    else:
        args += ["-c:v", "copy"]
    args += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", ffmpeg_path(out)]
    try:
        _run(args, "joining the answer video")
    except BaseException:
        out.unlink(missing_ok=True)  # never a half-written answer
        raise
    finally:
        listing.unlink(missing_ok=True)
    return out


def concat_quote(text: str) -> str:
    """A path for ffmpeg's concat list: single-quoted, each ``'`` written as ``'\\''``."""
    return "'" + text.replace("'", "'\\''") + "'"


def filter_value(text: str) -> str:
    """``text`` as one option value inside an ffmpeg filtergraph, whatever characters it holds.

    Two levels of ffmpeg's escaping: the filter's own option parser (``\\ ' :``), then the filtergraph
    parser (``\\ ' [ ] , ;``); a path with quotes, commas, colons or backslashes stays one value."""
    level1 = "".join("\\" + c if c in "\\':" else c for c in text)
    return "".join("\\" + c if c in "\\'[],;" else c for c in level1)


def probe(path: str | Path) -> dict:
    """Stream kinds and durations, read with ffprobe-free ffmpeg: decode and count."""
    import json

    exe = shutil.which("ffprobe")
    if exe:
        proc = subprocess.run([exe, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise TalkerError(f"cannot read {path}: {proc.stderr.strip()}")
        return json.loads(proc.stdout)
    raise TalkerError("ffprobe not found: install ffmpeg (apt-get install ffmpeg)")


# ------------------------------------------------------------------------------------------ subtitles

def _srt_time(t: float) -> str:
    ms = int(round(max(0.0, t) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def subtitle_cues(words: Sequence[WordTiming], max_chars: int = 42, min_s: float = 0.8) -> list[WordTiming]:
    """Group word timings into readable cues of at most ``max_chars`` characters; a sentence's end
    always ends its cue.

    No cue is shown for less than ``min_s`` unless it is a whole sentence: a short cue is joined
    with its neighbour in the sentence and the pair split again where both last long enough (or
    kept as one longer cue when no such split exists). A cue is then held on screen for ``min_s``
    where the next one leaves room."""
    sentences: list[list[WordTiming]] = [[]]
    for w in words:
        sentences[-1].append(w)
        if ends_sentence(w.text):
            sentences.append([])
    cues: list[WordTiming] = []
    for sentence in sentences:
        groups = _no_short_groups(_greedy_groups(sentence, max_chars), max_chars, min_s)
        cues.extend(WordTiming(_join([w.text for w in g]), g[0].start, g[-1].end) for g in groups)
    for i, c in enumerate(cues[:-1]):
        if c.end - c.start < min_s:
            cues[i] = WordTiming(c.text, c.start, max(c.end, min(c.start + min_s, cues[i + 1].start)))
    return cues


def _greedy_groups(words: list[WordTiming], max_chars: int) -> list[list[WordTiming]]:
    groups: list[list[WordTiming]] = []
    for w in words:
        if groups and len(_join([x.text for x in groups[-1] + [w]])) <= max_chars:
            groups[-1].append(w)
        else:
            groups.append([w])
    return groups


def _no_short_groups(groups: list[list[WordTiming]], max_chars: int, min_s: float) -> list[list[WordTiming]]:
    """Join each too-short cue of a sentence with a neighbour; split the pair again if it can be."""

    def length(g: list[WordTiming]) -> float:
        return g[-1].end - g[0].start

    while len(groups) > 1:
        short = [i for i, g in enumerate(groups) if length(g) < min_s]
        if not short:
            break
        i = short[0]
        # join with the neighbour that makes the shorter text
        j = i - 1 if i == len(groups) - 1 or (i > 0 and len(_join([w.text for w in groups[i - 1]]))
                                             < len(_join([w.text for w in groups[i + 1]]))) else i + 1
        a, b = min(i, j), max(i, j)
        merged = groups[a] + groups[b]
        best = None
        for k in range(1, len(merged)):
            left, right = merged[:k], merged[k:]
            if min(length(left), length(right)) >= min_s and \
                    max(len(_join([w.text for w in left])), len(_join([w.text for w in right]))) <= max_chars:
                # the most even split in time
                score = abs(length(left) - length(right))
                if best is None or score < best[0]:
                    best = (score, k)
        groups[a:b + 1] = [merged[:best[1]], merged[best[1]:]] if best else [merged]
    return groups


def _join(tokens: list[str]) -> str:
    out = ""
    for t in tokens:
        # CJK text has no spaces between words
        if out and not (_is_cjk(out[-1]) or _is_cjk(t[:1])):
            out += " "
        out += t
    return out


def _is_cjk(ch: str) -> bool:
    return bool(ch) and ("\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef")


def write_srt(cues: Sequence[WordTiming], path: str | Path) -> Path:
    p = Path(path)
    blocks = [f"{i}\n{_srt_time(c.start)} --> {_srt_time(c.end)}\n{c.text}\n" for i, c in enumerate(cues, 1)]
    p.write_text("\n".join(blocks), encoding="utf-8")
    return p


def write_vtt(cues: Sequence[WordTiming], path: str | Path) -> Path:
    p = Path(path)
    blocks = [f"{_srt_time(c.start).replace(',', '.')} --> {_srt_time(c.end).replace(',', '.')}\n{c.text}\n"
              for c in cues]
    p.write_text("WEBVTT\n\n" + "\n".join(blocks), encoding="utf-8")
    return p


# ------------------------------------------------------------------------------------------- images

def load_image(path: str | Path, max_pixels: int | None = None, min_side: int = 1) -> np.ndarray:
    """An RGB uint8 image, or ``BadInputError`` saying why not. The size is read from the file's header
    first: an image of more than ``max_pixels`` is refused before it is decoded (a 20000x20000 PNG is a
    small file but gigabytes of pixels), and one smaller than ``min_side`` on a side holds no usable face."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"image file not found: {p}")
    w, h = image_size(p)
    check_image_size(w, h, max_pixels, min_side)
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise BadInputError(f"cannot read the image {p.name}: it is corrupt or not an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header alone (Pillow reads no pixels until asked)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError:
        return (1 << 20, 1 << 20)  # far beyond any limit: refused below with the limit's message
    except (OSError, SyntaxError, ValueError):
        raise BadInputError(f"cannot read the image {path.name}: it is corrupt or not an image") from None


def check_image_size(w: int, h: int, max_pixels: int | None, min_side: int = 1) -> None:
    if max_pixels and w * h > max_pixels:
        raise BadInputError(f"the image is too large ({w}x{h} pixels, {w * h / 1e6:.0f} megapixels); the most "
                            f"this server takes is {max_pixels / 1e6:g} megapixels (limits.image_pixels): "
                            "use a smaller photo")
    if min(w, h) < max(1, min_side):
        raise BadInputError(f"the image is only {w}x{h} pixels, too small for a face: use a photo at least "
                            f"{min_side} pixels on each side")


def limit_size(image: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Downscale very large photos: the talking heads work on the face crop anyway."""
    import cv2

    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return image
    return cv2.resize(image, (int(w * s) // 2 * 2, int(h * s) // 2 * 2), interpolation=cv2.INTER_AREA)
