"""Ditto talking heads (antgroup/ditto-talkinghead): a photo that moves its head, blinks and speaks,
with the published PyTorch files, streaming.

Weights: ``python -m app_modules.cli download ditto`` (the hub repo digital-avatar/ditto-talkinghead:
``ditto_pytorch/models/*.pth``, the streaming HuBERT ``ditto_pytorch/aux_models/
hubert_streaming_fix_kv.onnx`` and the settings ``ditto_cfg/v0.4_hubert_cfg_pytorch.pkl``), or
``--checkpoint FOLDER`` pointing at a clone of that repo. Needs torch, onnxruntime, opencv, scipy and
``pip install --no-deps mediapipe==0.10.21`` (face landmarks, in place of upstream's InsightFace).

Per portrait (``prepare``): face mesh -> the rotated square crop -> motion extractor (pose, expression,
keypoints of the photo) and appearance features, the eye measures, the paste-back mask. Per sentence
(``render`` / ``render_stream``): HuBERT features as the audio comes -> LMDM windows (DDIM with guidance)
-> relative stitching onto the photo -> warp + decoder, a batch of frames at a time -> paste-back.
A frame leaves as soon as its window is sampled; online (the default) each waits for ``lookahead``
frames of audio after it. ``idle_frames`` is the model's own motion on silence, for the Real-time tab.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app_modules.checkpoints import CheckpointManager
from app_modules.devices import torch_device
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.media import limit_size, resample
from app_modules.options import Declared, option
from app_modules.types import Audio
from THG.base import THG

try:
    import torch
except ImportError as e:  # the registry checks first; this names the fix for direct imports
    raise ImportError("Ditto needs torch: pip install torch onnxruntime opencv-python-headless scipy") from e

MODELS = "ditto_pytorch/models"
HUBERT = "ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx"
CONFIG = "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl"
SEQ = 80  # frames of an LMDM window
BLINK_FRAMES = 3000  # upstream plans blinks over this many frames, then repeats the plan
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")  # the LMDM's 8


@dataclass
class DittoAvatar:
    """What ``prepare`` found in one portrait; reused for every sentence."""

    image: np.ndarray  # the portrait (scaled to max_side), RGB uint8: every frame is pasted into it
    m_o2c: np.ndarray  # photo -> crop transform (3, 3)
    source: dict[str, np.ndarray]  # the photo's motion (motion extractor outputs), (1, ...) each
    feature: torch.Tensor  # (1, 32, 16, R/4, R/4) appearance features, on the device
    conditions: object  # THG.ditto.motion.Conditions
    first_frame: np.ndarray  # (265,) the motion that conditions the first window
    stitcher: object  # THG.ditto.motion.Stitcher
    paste: object  # THG.ditto.face.PasteBack
    blink_rows: np.ndarray  # (BLINK_FRAMES,) blink-template row of each frame
    eye_open: np.ndarray  # (1, 2) of the photo
    frame: int = 0  # frames rendered so far: where the blink plan continues
    idle: list[np.ndarray] | None = None
    _lock: object = field(default=None, repr=False)


class DittoTHG(THG):
    """Ditto (ACM MM 2025): motion-space diffusion driving LivePortrait's renderer from one photo."""

    blinks = True  # its own frames blink (and its idle clip): the Real-time idle face adds none

    @dataclass(frozen=True)
    class Options(Declared, label="ditto"):
        # a folder laid out as the hub repo (ditto_pytorch/..., ditto_cfg/...); empty: the catalog's files
        checkpoint: str = ""
        config: str = ""  # a ditto_cfg/*.pkl; empty: v0.4_hubert_cfg_pytorch.pkl from the same place
        # online: each frame waits for `lookahead` frames of audio after it (80 - upstream's overlap_v2:
        # 10 is its 70, 5 its 75); offline: upstream's offline schedule (the settings file's overlap)
        online: bool = True
        lookahead: int = option(10, min=1, max=SEQ // 2)
        # DDIM steps per window; 0: the settings file's (50 in upstream's code)
        sampling_timesteps: int = option(0, min=0, max=1000)
        emotion: str = option("", choices=("", *EMOTIONS), visitor=True)  # "": the settings file's
        # frames between blinks: 0 random 60-100 (upstream's), -1 never, N: every N frames
        blink_every: int = option(0, min=-1, max=BLINK_FRAMES, visitor=True)
        # the networks' input: 256 is the published size (512 crops); 128 is 4x cheaper (previews)
        render_size: int = option(256, choices=(128, 256, 384, 512))
        batch_size: int = option(0, min=0, max=64)  # frames per warp + decoder call; 0: 8 on CUDA, 1 on the CPU
        max_side: int = option(1920, min=64, max=8192)  # larger portraits are scaled down (upstream's max_size)
        # the silent clip the Real-time tab loops between answers; 0: 2 s on CUDA, 0.2 s on the CPU (where
        # every frame takes seconds, and the clip is rendered when a conversation starts)
        idle_seconds: float = option(0.0, min=0, max=30)
        # seeds the diffusion noise and the blink plan: a sentence renders the same each time
        seed: int = option(0, min=0, max=2**31 - 1, visitor=True)
        device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N
        fp16: bool = True  # half precision for the renderer networks on CUDA (as upstream); ignored on CPU

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None):
        from THG.ditto.cfg import load_config
        from THG.ditto.hubert import HubertFeatures
        from THG.ditto.loaders import FILES, load_network
        from THG.face_mesh import FaceMesh

        self.options = o = options or self.Options()
        self.device = torch_device(o.device)
        checkpoints = checkpoints or CheckpointManager()
        self.config = load_config(Path(o.config) if o.config else self._path(checkpoints, CONFIG))
        self.emo = self._emotion()
        for name, (file, _cls) in FILES.items():
            setattr(self, name, load_network(name, self._path(checkpoints, f"{MODELS}/{file}")).to(self.device))
        self.hubert = HubertFeatures(self._path(checkpoints, HUBERT), device=str(self.device))
        self.overlap = SEQ - o.lookahead if o.online else self.config.overlap
        if not 0 < self.overlap < SEQ:
            raise TalkerError(f"the settings file's overlap_v2 {self.overlap} is not in 1..{SEQ - 1}")
        self.steps = o.sampling_timesteps or self.config.sampling_timesteps
        self._silence = self.hubert.silence(self.overlap) if o.online else None
        self._mesh = FaceMesh(refine_landmarks=True)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed sizes: let cuDNN pick its fastest kernels

    def _path(self, checkpoints: CheckpointManager, rel: str) -> Path:
        if self.options.checkpoint:
            p = Path(self.options.checkpoint) / rel
            if not p.is_file():
                raise MissingWeightsError(f"{p} not found: --checkpoint must be a folder laid out as the hub repo "
                                          "digital-avatar/ditto-talkinghead (ditto_pytorch/, ditto_cfg/)")
            return p
        return checkpoints.require("ditto", rel)

    def _emotion(self) -> np.ndarray:
        from THG.ditto.motion import emotion_rows

        e = self.options.emotion
        return emotion_rows(EMOTIONS.index(e)) if e else self.config.emo

    # ---- per portrait -------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> DittoAvatar:
        import threading

        from THG.ditto.face import PasteBack, crop, crop_matrix, eye_measures, face_points
        from THG.ditto.motion import Conditions, Stitcher, StitchSettings, blink_schedule, to_vector

        o, cfg = self.options, self.config
        image = _check_image(image, o.max_side)
        lm = self._mesh.normalized(image)
        if lm is None:
            raise BadInputError("no face found in the portrait: use a photo with one clearly visible, "
                                "roughly frontal face")
        h, w = image.shape[:2]
        dsize = 2 * o.render_size  # the decoder doubles the networks' input size
        m = crop_matrix(face_points(lm[:, :2] * (w, h)), dsize, cfg.crop_scale, cfg.crop_vy, cfg.crop_rotate)
        if 1 / abs(np.linalg.det(m[:2, :2])) ** 0.5 * dsize / cfg.crop_scale < 24:
            raise BadInputError("the face in the portrait is too small to animate: use a larger picture")
        face = crop(image, m, dsize)
        eye_lm = self._mesh.normalized(face)
        if eye_lm is None:  # the crop is the face itself; should the mesh miss it, map the photo's points
            pts = lm[:, :2] * (w, h) @ m[:2, :2].T + m[:2, 2]
            eye_lm = np.concatenate([pts / dsize, lm[:, 2:] * w / dsize], axis=1)
        eye_open, eye_ball = eye_measures(eye_lm)

        import cv2

        small = cv2.resize(face, (o.render_size, o.render_size), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(small.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(self.device)
        with torch.no_grad(), self._autocast():
            source = {k: v.float().cpu().numpy() for k, v in self.motion(x).items()}
            feature = self.appearance(x)
        template = cfg.template
        conditions = Conditions(
            self.emo, template.eye_open if template else eye_open, template.eye_ball if template else eye_ball,
            template.sc if template else source["kp"].reshape(-1), use=cfg.conditions,
            eye_first_only=cfg.eye_first_only)
        settings = StitchSettings(
            use_d_keys=cfg.use_d_keys or ("exp", "pitch", "yaw", "roll", "t"), relative=cfg.relative,
            drive_eye=True if cfg.drive_eye is None else cfg.drive_eye, blink=cfg.blink, ctrl=cfg.ctrl,
            stitching=cfg.stitching, template_scale=template.scale if template else None)
        rows = blink_schedule(BLINK_FRAMES, len(cfg.blink) if cfg.blink is not None else 1, o.blink_every,
                              np.random.default_rng(o.seed))
        return DittoAvatar(
            image=image, m_o2c=m, source=source, feature=feature, conditions=conditions,
            first_frame=to_vector(template.motion if template else source)[0],
            stitcher=Stitcher(source, settings, self._stitch), paste=PasteBack(image, m, dsize),
            blink_rows=rows, eye_open=eye_open, _lock=threading.Lock())

    def _stitch(self, x_s: np.ndarray, x_d: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            args = (torch.from_numpy(np.array(a, np.float32)).to(self.device) for a in (x_s, x_d))
            return self.stitch(*args).float().cpu().numpy()

    # ---- per sentence -------------------------------------------------------------------------
    def render(self, avatar: DittoAvatar, audio: Audio) -> Iterator[np.ndarray]:
        yield from self.render_stream(avatar, [audio])

    def render_stream(self, avatar: DittoAvatar, chunks: Iterable[Audio]) -> Iterator[np.ndarray]:
        """Frames for speech that arrives in pieces: each piece's features go to the motion windows at
        once, and frames leave as their windows are sampled. The frames are those of the joined audio
        (exactly for 16 kHz pieces; others are resampled piece by piece)."""
        from THG.ditto.hubert import HOP, SAMPLE_RATE, frame_count

        features = self.hubert.stream()
        motion = self.motion_stream(avatar)
        total = 0
        start = self._claim(avatar, None)
        done = 0
        for chunk in chunks:
            samples = resample(chunk, SAMPLE_RATE).samples
            total += len(samples)
            # one HuBERT hop at a time: a window's frames are rendered before later windows are sampled
            for at in range(0, len(samples), HOP):
                frames = motion.push(features.push(samples[at:at + HOP]))
                yield from self._frames(avatar, motion, frames, start + done)
                done += len(frames)
        n = frame_count(total)
        frames = np.concatenate([motion.push(features.finish()), motion.finish(n)])
        yield from self._frames(avatar, motion, frames, start + done)
        self._claim(avatar, n)

    def motion_stream(self, avatar: DittoAvatar):
        """A fresh ``MotionStream`` for one sentence: the seeded DDIM sampler on the LMDM."""
        from THG.ditto.lmdm import DDIMSampler
        from THG.ditto.scheduler import MotionStream

        cfg = self.config
        ddim = DDIMSampler(self.lmdm, self.steps, torch.Generator().manual_seed(self.options.seed),
                           device=self.device)

        def sample(kp_cond: np.ndarray, cond: np.ndarray) -> np.ndarray:
            kp, c = (torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device) for a in (kp_cond, cond))
            return ddim.sample(kp, c).float().cpu().numpy()

        return MotionStream(sample, avatar.conditions, avatar.first_frame, overlap=self.overlap,
                            online=self.options.online, silence=self._silence, smooth=cfg.smooth,
                            fix_kp_cond=cfg.fix_kp_cond, fix_kp_cond_dim=cfg.fix_kp_cond_dim, seq_frames=SEQ)

    def keypoints(self, avatar: DittoAvatar, motion_stream, vectors: np.ndarray, first: int):
        """(k, 265) released motion frames -> x_s (1, 21, 3), x_d (k, 21, 3) for frames ``first...``"""
        from THG.ditto.motion import to_motion

        clip = self.config.clip
        if clip is not None:
            vectors = np.clip(vectors, clip[0], clip[1])
            d0 = np.clip(motion_stream.d0, clip[0], clip[1])
        else:
            d0 = motion_stream.d0
        rows = avatar.blink_rows[(first + np.arange(len(vectors))) % len(avatar.blink_rows)]
        return avatar.stitcher(to_motion(vectors), to_motion(d0) if self.config.relative else None, rows)

    def _frames(self, avatar: DittoAvatar, motion_stream, vectors: np.ndarray, first: int) -> Iterator[np.ndarray]:
        if not len(vectors):
            return
        x_s, x_d = self.keypoints(avatar, motion_stream, vectors, first)
        bs = self.options.batch_size or (8 if self.device.type == "cuda" else 1)
        for i in range(0, len(x_d), bs):
            yield from self._render_batch(avatar, x_s, x_d[i:i + bs])

    def _render_batch(self, avatar: DittoAvatar, x_s: np.ndarray, x_d: np.ndarray) -> list[np.ndarray]:
        n = len(x_d)
        with torch.no_grad(), self._autocast():
            kp_s = torch.from_numpy(np.repeat(x_s, n, axis=0)).to(self.device)
            kp_d = torch.from_numpy(np.ascontiguousarray(x_d)).to(self.device)
            warped = self.warp(avatar.feature.expand(n, -1, -1, -1, -1), kp_s, kp_d)
            images = self.decoder(warped)
        images = (images.float().clamp(0, 1) * 255).permute(0, 2, 3, 1).cpu().numpy()
        return [avatar.paste(img) for img in images]

    def _claim(self, avatar: DittoAvatar, frames: int | None) -> int:
        """Where this sentence starts in the avatar's blink plan; ``frames`` given: advance it."""
        with avatar._lock:
            if frames is not None:
                avatar.frame += frames
            return avatar.frame

    def idle_frames(self, avatar: DittoAvatar) -> list[np.ndarray]:
        """The model's own motion on ``idle_seconds`` of silence (blinks included), rendered once per
        portrait: the Real-time tab loops it back and forth between answers instead of a warp."""
        if avatar.idle is None:
            seconds = self.options.idle_seconds or (2.0 if self.device.type == "cuda" else 0.2)
            silence = Audio(np.zeros(int(seconds * 16000), np.float32), 16000)
            avatar.idle = list(self.render(avatar, silence))
        return avatar.idle

    def _autocast(self):
        if self.options.fp16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


def _check_image(image: np.ndarray, max_side: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise BadInputError(f"the portrait must be an RGB uint8 image, got shape {image.shape} {image.dtype}")
    image = limit_size(np.ascontiguousarray(image[:, :, :3]), max_side)
    h, w = image.shape[:2]
    if min(h, w) < 32:
        raise BadInputError(f"the image is too small ({w}x{h}): no face can be found in it")
    return np.ascontiguousarray(image[: h // 2 * 2, : w // 2 * 2])  # even sides, as upstream (video encoders)
