"""Wav2Lip lip sync with the published checkpoints (wav2lip_gan.pth / wav2lip.pth + S3FD).

``prepare`` finds the face once (S3FD, the original padding and box smoothing) and caches what
depends only on the portrait: the network's face input and, for a still photo, the face
encoder's features, so each frame then costs only the audio encoder and the decoder.
``render`` turns the sentence's audio into mel windows and yields frames batch by batch as
the network produces them; the generated mouth is pasted back through a feathered mask so no
box edge shows. On a GPU the whole batch stays on the device (fp16 network, compositing in
float32) and only the pasted box region comes back to the host.

A short video works as the avatar too (a list of RGB frames): it plays as a back-and-forth idle
loop that continues from one sentence to the next.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from app_modules.checkpoints import CheckpointManager
from app_modules.devices import torch_device
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.media import frame_count, limit_size, resample
from app_modules.options import Declared, option
from app_modules.types import Audio
from THG.base import THG
from THG.enhancer import maybe_enhancer
from THG.wav2lip.audio import (
    HPARAMS,
    MEL_STEP,
    StreamingMel,
    chunk_starts,
    mel_windows,
    melspectrogram,
)
from THG.wav2lip.loading import load_s3fd, load_wav2lip
from THG.wav2lip.model import IMG_SIZE
from THG.wav2lip.s3fd import FaceDetector

S3FD_NAME = "s3fd-619a316812.pth"
SMOOTH_WINDOW = 5  # frames averaged by the original's get_smoothened_boxes


@dataclass
class Wav2LipAvatar:
    """Everything ``render`` needs about one portrait (or idle video), computed once."""

    frames: list[np.ndarray]  # RGB uint8, the output size
    boxes: np.ndarray  # (N, 4) int: y1, y2, x1, x2 of the face box in each frame
    faces: torch.Tensor  # (N, 6, 96, 96) network input on the device: masked + reference face, BGR
    crops: list[torch.Tensor]  # (h, w, 3) uint8 box region of each frame, on the device
    still_feats: list[torch.Tensor] | None = None  # face-encoder output when there is one frame
    next_frame: int = 0  # position in the idle loop where the next sentence starts
    _masks: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)


class Wav2LipTHG(THG):
    """Wav2Lip: lip sync of a portrait or a short video to any speech.

    ``render`` takes a sentence's audio; ``render_stream`` takes the same audio as it is being
    synthesised (an iterable of chunks) and starts on the first frames before it ends."""

    @dataclass(frozen=True)
    class Options(Declared, label="wav2lip"):
        # Wav2Lip weights; empty: checkpoints/wav2lip/wav2lip_gan.pth (wav2lip.pth: tighter sync, blurrier mouth)
        checkpoint: str = ""
        # S3FD face detector; empty: checkpoints/wav2lip/s3fd-619a316812.pth
        s3fd_checkpoint: str = ""
        # frames per network call; the first call uses first_batch so the first frames arrive sooner
        batch_size: int = option(128, min=1, max=1024)
        first_batch: int = option(16, min=1, max=1024)
        # "auto" (CUDA when available), "cpu", "cuda" or "cuda:N"
        device: str = "auto"
        # half precision on the GPU (ignored on the CPU)
        fp16: bool = True
        # bfloat16 on the CPU: about 2x faster on CPUs with AVX512-BF16/AMX (slower without);
        # pixels move by about 1/255
        cpu_bf16: bool = False
        # extra pixels around the detected face: top, bottom, left, right (bottom 10 keeps the chin)
        pads: tuple[int, int, int, int] | str = option((0, 10, 0, 0), min=0, max=200, visitor=True)
        # average face boxes over 5 frames (video avatars; no effect on a photo)
        smooth: bool = option(True, visitor=True)
        # portraits and video frames larger than this are scaled down first
        max_side: int = option(1280, min=64, max=4096)
        # S3FD runs on frames scaled to at most this size (0: full size, as the original)
        detect_max_side: int = option(640, min=0, max=4096)
        # face enhancer run on every frame: "none" or "gfpgan" (checkpoints/gfpgan/GFPGANv1.4.pth)
        enhancer: str = "none"

        def __post_init__(self):
            pads = self.pads
            if isinstance(pads, str):  # from the command line: "0,10,0,0"
                try:
                    pads = tuple(int(p) for p in pads.replace(" ", "").split(","))
                except ValueError:
                    pads = ()
            if len(pads) != 4:
                raise TalkerError(f"pads must be four integers 'top,bottom,left,right', got {self.pads!r}")
            object.__setattr__(self, "pads", tuple(int(p) for p in pads))
            super().__post_init__()

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = opts = options or Wav2LipTHG.Options()
        checkpoints = checkpoints or CheckpointManager()
        self.device = torch_device(opts.device)
        if self.device.type == "cuda":
            self.dtype = torch.float16 if opts.fp16 else torch.float32
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        else:
            self.dtype = torch.bfloat16 if opts.cpu_bf16 else torch.float32
        path = checkpoints.require("wav2lip", "wav2lip_gan.pth", opts.checkpoint or None)
        self._s3fd_path = _s3fd_path(opts, checkpoints, path)
        model = load_wav2lip(path).fuse().to(self.device, self.dtype)
        # NHWC suits tensor cores and oneDNN's bf16 kernels (measured ~25% less CPU time in bf16)
        self._nhwc = self.device.type == "cuda" or self.dtype == torch.bfloat16
        if self._nhwc:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._detector: FaceDetector | None = None
        self.enhancer = maybe_enhancer(opts.enhancer, checkpoints, device=str(self.device), fp16=opts.fp16)

    # ------------------------------------------------------------------------------------- prepare

    def prepare(self, image: np.ndarray | Sequence[np.ndarray]) -> Wav2LipAvatar:
        """A still RGB uint8 portrait (H, W, 3), or a short video as a list of such frames."""
        frames = _as_frames(image, self.options.max_side)
        boxes = self._face_boxes(frames)
        faces, crops = [], []
        for frame, (y1, y2, x1, x2) in zip(frames, boxes, strict=True):
            crop = frame[y1:y2, x1:x2]
            crops.append(torch.from_numpy(np.ascontiguousarray(crop)).to(self.device))
            face = cv2.resize(crop, (IMG_SIZE, IMG_SIZE))[:, :, ::-1]  # the network sees BGR, as trained
            masked = face.copy()
            masked[IMG_SIZE // 2:] = 0  # the lower half is what it has to generate
            faces.append(np.concatenate((masked, face), axis=2))
        x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float().div_(255.0)
        x = x.to(self.device, self.dtype)
        avatar = Wav2LipAvatar(frames=frames, boxes=boxes, faces=x, crops=crops)
        if len(frames) == 1:
            with torch.inference_mode():
                avatar.still_feats = self.model.encode_face(self._to_model(x))
        return avatar

    def _face_boxes(self, frames: list[np.ndarray]) -> np.ndarray:
        if self._detector is None:
            self._detector = FaceDetector(load_s3fd(self._s3fd_path), self.device, self.options.detect_max_side)
        found = self._detector.detect(frames)
        missing = [i for i, b in enumerate(found) if b is None]
        if missing:
            where = ("in the image" if len(frames) == 1
                     else f"in {len(missing)} frame(s) of the video (first: {missing[0]})")
            raise BadInputError(f"no face found {where}: use a well-lit, front-facing photo "
                                "where the whole face is visible and not too small")
        top, bottom, left, right = self.options.pads
        h, w = frames[0].shape[:2]
        boxes = np.array([[max(0, x1 - left), max(0, y1 - top), min(w, x2 + right), min(h, y2 + bottom)]
                          for x1, y1, x2, y2 in found])
        if self.options.smooth:
            boxes = smooth_boxes(boxes)
        x1, y1, x2, y2 = boxes.T
        if np.any(x2 - x1 < 2) or np.any(y2 - y1 < 2):
            raise BadInputError("the face found is too small to animate: use a closer photo")
        return np.stack((y1, y2, x1, x2), axis=1)

    # -------------------------------------------------------------------------------------- render

    def render(self, avatar: Wav2LipAvatar, audio: Audio) -> Iterator[np.ndarray]:
        n = frame_count(audio, self.fps)
        mel = melspectrogram(resample(audio, HPARAMS.sample_rate).samples)
        yield from self._emit(avatar, mel_windows(mel, chunk_starts(mel.shape[1], n, self.fps)), first=True)

    def render_stream(self, avatar: Wav2LipAvatar, chunks: Iterable[Audio]) -> Iterator[np.ndarray]:
        """Frames for speech that arrives in pieces (a streaming TTS): a batch is rendered as soon
        as the audio its mel windows need has arrived. The frames are those ``render`` gives for
        the joined audio (chunks at 16 kHz match exactly; others are resampled one by one)."""
        stream = StreamingMel()
        step = HPARAMS.sample_rate / HPARAMS.hop_size / self.fps
        done, total, rate = 0, 0, None
        for chunk in chunks:
            if rate is not None and chunk.sample_rate != rate:
                raise TalkerError(f"audio chunks changed sample rate ({rate} -> {chunk.sample_rate} Hz)")
            rate, total = chunk.sample_rate, total + len(chunk.samples)
            mel = stream.push(resample(chunk, HPARAMS.sample_rate).samples)
            heard = math.floor(total / rate * self.fps)  # frames surely inside the final video
            ready = done
            while ready < heard and int(ready * step) + MEL_STEP <= mel.shape[1]:
                ready += 1
            size = self.options.first_batch if done == 0 else self.options.batch_size
            size = min(size, self.options.batch_size)
            if ready - done >= size:
                stop = done + (ready - done) // size * size  # whole batches only: keeps them full
                starts = np.array([int(i * step) for i in range(done, stop)], dtype=np.int64)
                yield from self._emit(avatar, mel_windows(mel, starts), first=done == 0)
                done = stop
        if rate is None:
            return
        n = frame_count(Audio(np.broadcast_to(np.float32(0), (total,)), rate), self.fps)
        mel = stream.finish()
        starts = chunk_starts(mel.shape[1], n, self.fps)[done:]
        yield from self._emit(avatar, mel_windows(mel, starts), first=done == 0)

    def _emit(self, avatar: Wav2LipAvatar, windows: np.ndarray, first: bool) -> Iterator[np.ndarray]:
        """Render mel windows (n, 80, 16) in batches, continuing the avatar's idle loop."""
        n = len(windows)
        which = _loop_indices(len(avatar.frames), avatar.next_frame, n)
        avatar.next_frame += n
        start = 0
        while start < n:
            size = self.options.first_batch if first and start == 0 else self.options.batch_size
            stop = min(n, start + min(size, self.options.batch_size))
            regions = self._render_batch(avatar, windows[start:stop], which[start:stop])
            frames = []
            for i, region in zip(which[start:stop], regions, strict=True):
                y1, y2, x1, x2 = avatar.boxes[i]
                frame = avatar.frames[i].copy()
                frame[y1:y2, x1:x2] = region
                frames.append(frame)
            if self.enhancer is not None:
                # S3FD's boxes are tight; GFPGAN wants the face in the middle half of its crop
                boxes = [(x1, y1, x2, y2) for y1, y2, x1, x2 in (avatar.boxes[i] for i in which[start:stop])]
                frames = self.enhancer.enhance_many(frames, boxes, expand=1.5)
            yield from frames
            start = stop

    @torch.inference_mode()
    def _render_batch(self, avatar: Wav2LipAvatar, windows: np.ndarray, which: np.ndarray) -> list[np.ndarray]:
        """Mel windows (b, 80, 16) -> the pasted box region of each of the b frames (RGB uint8)."""
        mel = torch.from_numpy(windows).to(self.device, torch.float32).unsqueeze(1)
        embedding = self.model.encode_audio(self._to_model(mel.to(self.dtype)))
        if avatar.still_feats is not None:
            feats = avatar.still_feats  # decode() broadcasts batch-1 skips
        else:  # an idle video: encode each distinct frame of the batch once
            uniq, inverse = np.unique(which, return_inverse=True)
            feats = self.model.encode_face(self._to_model(avatar.faces[torch.from_numpy(uniq).to(self.device)]))
            inv = torch.from_numpy(inverse).to(self.device)
            feats = [f[inv] for f in feats]
        pred = self.model.decode(embedding, feats).float().flip(1)  # BGR -> RGB, (b, 3, 96, 96) in [0, 1]
        out: list[np.ndarray | None] = [None] * len(which)
        # Frames that share a box (all of them for a photo) are resized and blended in one call.
        groups: dict[tuple[int, ...], list[int]] = {}
        for j, i in enumerate(which):
            key = (int(i),) if avatar.still_feats is None else tuple(avatar.boxes[i])
            groups.setdefault(key, []).append(j)
        for js in groups.values():
            i = int(which[js[0]])
            y1, y2, x1, x2 = (int(v) for v in avatar.boxes[i])
            h, w = y2 - y1, x2 - x1
            face = F.interpolate(pred[js], size=(h, w), mode="bilinear", align_corners=False)
            face = face.permute(0, 2, 3, 1).mul_(255.0)
            base = avatar.crops[i].float()
            mask = self._mask(avatar, h, w)
            blended = torch.lerp(base, face, mask).add_(0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()
            for k, j in enumerate(js):
                out[j] = blended[k]
        return out  # type: ignore[return-value]

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self._nhwc else x

    def _mask(self, avatar: Wav2LipAvatar, h: int, w: int) -> torch.Tensor:
        key = (h, w)
        if key not in avatar._masks:
            avatar._masks[key] = torch.from_numpy(feather_mask(h, w)).to(self.device)[:, :, None]
        return avatar._masks[key]


# ------------------------------------------------------------------------------------------ helpers

def _s3fd_path(opts: Wav2LipTHG.Options, checkpoints: CheckpointManager, wav2lip: Path) -> Path:
    """The given detector file, else the catalog's, else one lying next to a ``--checkpoint`` file."""
    if opts.s3fd_checkpoint:
        return checkpoints.require("wav2lip", S3FD_NAME, opts.s3fd_checkpoint)
    try:
        return checkpoints.require("wav2lip", S3FD_NAME)
    except MissingWeightsError:
        for name in (S3FD_NAME, "s3fd.pth"):  # s3fd.pth: the name in the Wav2Lip repository
            if (wav2lip.parent / name).is_file():
                return wav2lip.parent / name
        raise




def _as_frames(image: np.ndarray | Sequence[np.ndarray], max_side: int) -> list[np.ndarray]:
    """Validated RGB uint8 frames, all the same size, scaled down to ``max_side``."""
    if isinstance(image, np.ndarray) and image.ndim == 3:
        frames = [image]
    elif isinstance(image, np.ndarray) and image.ndim == 4 or isinstance(image, (list, tuple)):
        frames = list(image)
    else:
        raise BadInputError(f"expected an RGB image (H, W, 3) or a list of frames, got {type(image).__name__}"
                            f"{getattr(image, 'shape', '')}")
    if not frames:
        raise BadInputError("the avatar video has no frames")
    shape = frames[0].shape
    for f in frames:
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise BadInputError("the portrait must be an RGB uint8 image of shape (H, W, 3); got "
                                f"{getattr(f, 'dtype', type(f).__name__)} {getattr(f, 'shape', '')}")
        if f.shape != shape:
            raise BadInputError(f"all video frames must have the same size; got {shape} and {f.shape}")
    if min(shape[:2]) < 32:
        raise BadInputError(f"the image is too small ({shape[1]}x{shape[0]}): no face can be found in it")
    return [np.ascontiguousarray(limit_size(f, max_side)) for f in frames]


def smooth_boxes(boxes: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """The original's temporal smoothing: each box becomes the mean of itself and the next
    ``window - 1`` (the last ones: of the final ``window``), written back in place into the
    integer array, so values truncate and the tail reuses already smoothed boxes."""
    boxes = boxes.copy()
    for i in range(len(boxes)):
        w = boxes[len(boxes) - window:] if i + window > len(boxes) else boxes[i:i + window]
        boxes[i] = np.mean(w, axis=0)
    return boxes


def feather_mask(h: int, w: int) -> np.ndarray:
    """(h, w) float32 weights for the generated face: 1 over the mouth and jaw, easing to 0
    towards the eyes and the box sides, so the untouched upper face stays sharp and no seam shows.
    Wav2Lip regenerates only the lower half; its upper half is a blurrier copy of the input."""
    def ramp(n: int, a: float, b: float) -> np.ndarray:  # smoothstep from 0 at a*n to 1 at b*n
        t = np.clip((np.arange(n) + 0.5 - a * n) / max((b - a) * n, 1e-6), 0.0, 1.0)
        return t * t * (3 - 2 * t)

    vertical = ramp(h, 0.35, 0.55) * ramp(h, 0.0, 0.06)[::-1]
    horizontal = ramp(w, 0.02, 0.16) * ramp(w, 0.02, 0.16)[::-1]
    return np.outer(vertical, horizontal).astype(np.float32)


def _loop_indices(n_frames: int, start: int, count: int) -> np.ndarray:
    """Avatar frame for each output frame: forward then backward (no jump at the loop point)."""
    if n_frames == 1:
        return np.zeros(count, dtype=np.int64)
    period = 2 * n_frames - 2
    pos = (start + np.arange(count)) % period
    return np.where(pos < n_frames, pos, period - pos).astype(np.int64)
