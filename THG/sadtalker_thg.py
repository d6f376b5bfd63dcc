"""SadTalker talking heads from one portrait, with the published checkpoints.

Weights: ``python -m app_modules.cli download sadtalker`` (SadTalker_V0.0.2_256.safetensors and
mapping_00229-model.pth.tar; the 512 model and mapping_00109 for ``full`` mode are optional).
Needs torch, safetensors, scipy, opencv and ``pip install --no-deps mediapipe==0.10.21`` (face landmarks,
in place of upstream's facexlib, which needs torchvision).

Per portrait (``prepare``): landmarks, the crop, 3DMM coefficients, and everything of the renderer that
depends on the source image only (canonical keypoints, source keypoints, the encoded feature volume).
Per sentence (``render``): mel windows -> expression (audio2exp) and head pose (audio2pose, smoothed)
-> MappingNet -> keypoints -> generator, in batches of frames.

Reference videos (upstream's ``--ref_pose`` / ``--ref_eyeblink``): every frame is cropped with the box
found in its first frame and run through the same landmarks + alignment + 3DMM path as the portrait;
the coefficients are cached per file. ``ref_pose`` adds the video's head motion (each frame's pose minus
its first frame's) to the predicted pose; ``ref_eyeblink`` feeds the video's 64 expression coefficients
to audio2exp in place of the portrait's, with the blink ratio at zero. A video shorter than the speech
is looped, a longer one cut, frame for frame (its frame rate is not looked at), as upstream does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from app_modules.checkpoints import CheckpointManager
from app_modules.devices import torch_device
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.options import Declared, option
from app_modules.types import Audio
from THG.base import THG

try:
    import torch
except ImportError as e:  # the registry checks first; this names the fix for direct imports
    raise ImportError("SadTalker needs torch: pip install torch safetensors opencv-python-headless") from e

PREPROCESS = ("crop", "extcrop", "resize", "full")
SIZES = (256, 512)
SEMANTIC_RADIUS = 13  # MappingNet sees 27 frames of coefficients around each frame
NUM_POSE_STYLES = 46
RECON_BATCH = 8  # reference-video frames per face_3drecon call


@dataclass
class Avatar:
    """What ``prepare`` found in one portrait; reused for every sentence."""

    image: np.ndarray  # the portrait, RGB uint8
    box: tuple[int, int, int, int]  # the crop in the portrait (x1, y1, x2, y2)
    coeffs: np.ndarray  # (70,) expression 64 + pose 6, or (73,) with the crop's scale and shift
    kp_canonical: torch.Tensor  # (1, 15, 3)
    kp_source: torch.Tensor  # (1, 15, 3)
    feature: torch.Tensor  # (1, 32, 16, size/4, size/4), the generator's encoding of the crop
    mask: np.ndarray | None  # paste-back weights for ``full`` mode


class SadTalkerTHG(THG):
    """SadTalker (CVPR 2023): audio-driven expression, blinks and head motion for one photo."""

    @dataclass(frozen=True)
    class Options(Declared, label="sadtalker"):
        checkpoint: str = ""  # path of a SadTalker_V0.0.2_*.safetensors; empty: the catalog's file for `size`
        mapping_checkpoint: str = ""  # path of a mapping_*.pth.tar; empty: 00229 (00109 in full mode if present)
        size: int = option(256, choices=SIZES)  # the model: 256 or 512 (the 512 checkpoint is an optional download)
        # 0: render at `size`; a multiple of 128 runs the same model at that size (128: ~4x faster, previews)
        render_size: int = option(0, min=0, max=2048)
        # crop: the face; extcrop: wider; resize: the whole image; full: face pasted back
        preprocess: str = option("crop", choices=PREPROCESS, visitor=True)
        still: bool = option(False, visitor=True)  # keep the portrait's head pose (no audio-driven head motion)
        # >1 exaggerates the expression, <1 calms it
        expression_scale: float = option(1.0, min=0, max=3, step=0.05, visitor=True)
        pose_style: int = option(0, min=0, max=NUM_POSE_STYLES - 1, visitor=True)  # one of the 46 learned styles
        # seeds the pose noise and the blinks, so a sentence renders the same each time
        seed: int = option(0, min=0, max=2**31 - 1, visitor=True)
        batch_size: int = option(2, min=1, max=64)  # frames per generator call
        device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N
        fp16: bool = True  # half precision for the renderer on CUDA; ignored on CPU
        enhancer: str = "none"  # face enhancer on every frame: "none" or "gfpgan" (GFPGANv1.4.pth)
        # a video whose head motion (relative to its first frame) is added to the predicted head pose
        ref_pose: str = ""
        # a video whose expression, frame by frame, drives audio2exp (its blinks in place of random ones)
        ref_eyeblink: str = ""

    def __init__(self, options: Options | None = None, checkpoints: CheckpointManager | None = None):
        self.options = options or self.Options()
        _verify_options(self.options)
        self.device = torch_device(self.options.device)
        self.render_size = self.options.render_size or self.options.size
        checkpoints = checkpoints or CheckpointManager()
        self._load(checkpoints)
        self._detector = None
        self._references: dict[tuple, np.ndarray] = {}  # reference-video coefficients by file
        from THG.enhancer import maybe_enhancer

        self.enhancer = maybe_enhancer(self.options.enhancer, checkpoints, device=str(self.device),
                                       fp16=self.options.fp16)

    def _load(self, checkpoints: CheckpointManager) -> None:
        from THG.sadtalker.loaders import load_mapping, load_safetensors

        o = self.options
        path = checkpoints.require("sadtalker", f"SadTalker_V0.0.2_{o.size}.safetensors", o.checkpoint or None)
        mapping_path = o.mapping_checkpoint or None
        if mapping_path is None and o.preprocess == "full":
            try:  # upstream's full mode uses the model that also sees the crop parameters
                mapping_path = checkpoints.require("sadtalker", "mapping_00109-model.pth.tar")
            except MissingWeightsError:
                mapping_path = None
        if mapping_path is None:
            mapping_path = checkpoints.require("sadtalker", "mapping_00229-model.pth.tar")
        nets = load_safetensors(path)
        nets["mapping"] = load_mapping(mapping_path)
        for name, net in nets.items():
            setattr(self, name, net.to(self.device))
        self.coeff_nc = self.mapping.first[0].in_channels

    # ---- per portrait -------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> Avatar:
        import cv2

        from THG.sadtalker.face import feather_mask
        from THG.sadtalker.mapping import keypoint_transformation

        image = _check_image(image)
        lm = self._landmarks(image)
        if lm is None:  # resize mode would run without one, but it would animate noise
            raise BadInputError("no face found in the portrait: use a photo with one clearly visible, "
                                "roughly frontal face")
        box = self._box(lm, image, "the portrait")
        x1, y1, x2, y2 = box
        size = self.render_size
        source = cv2.resize(image[y1:y2, x1:x2], (size, size))
        coeffs = self._recon_coeffs([source])[0][:self.coeff_nc]

        with torch.no_grad(), self._autocast():
            src = _to_tensor(source, self.device)
            kp_canonical = self.kp_extractor(src).float()
            window = torch.from_numpy(np.repeat(coeffs[:, None], 2 * SEMANTIC_RADIUS + 1, axis=1))[None]
            kp_source = keypoint_transformation(kp_canonical, self.mapping(window.to(self.device)))
            feature = self.generator.encode(src)
        mask = feather_mask(x2 - x1, y2 - y1) if self.options.preprocess == "full" else None
        return Avatar(image=image, box=box, coeffs=coeffs, kp_canonical=kp_canonical, kp_source=kp_source,
                      feature=feature, mask=mask)

    def _landmarks(self, rgb: np.ndarray):
        from THG.sadtalker.face import LandmarkDetector

        if self._detector is None:
            self._detector = LandmarkDetector()
        return self._detector(rgb)

    def _box(self, lm, image: np.ndarray, what: str) -> tuple[int, int, int, int]:
        """The crop of ``image`` for the preprocess mode, from its landmarks."""
        from THG.sadtalker.face import crop_boxes

        h, w = image.shape[:2]
        face, wide = crop_boxes(lm, w, h)
        box = {"resize": (0, 0, w, h), "extcrop": wide}.get(self.options.preprocess, face)
        x1, y1, x2, y2 = box
        if x2 - x1 < 8 or y2 - y1 < 8:
            raise BadInputError(f"the face in {what} is too small to animate: use a larger picture")
        return box

    def _recon_coeffs(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        """(n, 73) coefficients of square RGB crops: expression 64, pose 6, and the alignment's scale
        and shift, RECON_BATCH crops per face_3drecon call as they come. Upstream aligns each crop by its
        own landmarks; where none are found it takes the previous crop's (a video), or the mean face
        position when there is none before."""
        from THG.sadtalker.face import align_for_recon

        five = None
        aligned, trans, out = [], [], []
        for crop in crops:
            lm = self._landmarks(crop)
            five = lm.five() if lm is not None else five
            img, t = align_for_recon(crop, five)
            aligned.append(img)
            trans.append(t[2:])
            if len(aligned) == RECON_BATCH:
                out.append(self._recon_batch(aligned))
                aligned = []
        if aligned:
            out.append(self._recon_batch(aligned))
        return np.concatenate([np.concatenate(out), np.stack(trans)], axis=1).astype(np.float32)

    def _recon_batch(self, aligned: list[np.ndarray]) -> np.ndarray:
        """face_3drecon on 224x224 aligned crops -> (n, 70) expression and pose."""
        from THG.sadtalker.face_recon import split_coeffs

        x = torch.from_numpy(np.stack(aligned).astype(np.float32) / 255.0).permute(0, 3, 1, 2).to(self.device)
        with torch.no_grad():
            parts = split_coeffs(self.face_3drecon(x))
        return torch.cat([parts["exp"], parts["angle"], parts["trans"]], dim=1).float().cpu().numpy()

    def reference_coefficients(self, path: str) -> np.ndarray:
        """(frames, 73) coefficients of every frame of a reference video, as upstream's ``CropAndExtract``
        on a video: the crop box of its first frame for all frames, then per frame landmarks, alignment
        and face_3drecon. Cached per file (path, size and modification time)."""
        try:
            st = os.stat(path)
        except OSError as e:
            raise BadInputError(f"cannot read the reference video {path}: {e.strerror or e}") from e
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if key not in self._references:
            self._references[key] = self._recon_coeffs(self._reference_crops(path))
        return self._references[key]

    def _reference_crops(self, path: str) -> Iterator[np.ndarray]:
        """The video's frames cut to the box found in its first frame, at the render size, one by one."""
        import cv2

        cap = cv2.VideoCapture(path)
        box = None
        size = self.render_size
        try:
            while cap.isOpened():
                ok, frame = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if box is None:
                    lm = self._landmarks(rgb)
                    if lm is None:
                        raise BadInputError(f"no face found in the first frame of the reference video {path}: "
                                            "use a video that starts with one clearly visible, roughly frontal face")
                    box = self._box(lm, rgb, f"the reference video {path}")
                x1, y1, x2, y2 = box
                crop = rgb[y1:y2, x1:x2]  # a later frame of another size is cut to fit
                yield cv2.resize(crop, (size, size)) if crop.size else np.zeros((size, size, 3), np.uint8)
        finally:
            cap.release()
        if box is None:
            raise BadInputError(f"cannot read the reference video {path}: OpenCV decodes no frames from it "
                                "(not a video, damaged, or a codec this OpenCV build lacks)")

    # ---- per sentence -------------------------------------------------------------------------
    def render(self, avatar: Avatar, audio: Audio) -> Iterator[np.ndarray]:
        from THG.sadtalker.mapping import keypoint_transformation

        frames = math.ceil(audio.duration * self.fps)
        if frames <= 0:
            return
        coeffs = self.coefficients(avatar, audio, frames)  # (T, coeff_nc)
        idx = np.clip(np.arange(frames)[:, None] + np.arange(-SEMANTIC_RADIUS, SEMANTIC_RADIUS + 1), 0, frames - 1)
        windows = torch.from_numpy(coeffs[idx].transpose(0, 2, 1).copy())  # (T, coeff_nc, 27)
        bs = self.options.batch_size
        for start in range(0, frames, bs):
            batch = windows[start:start + bs].to(self.device)
            n = batch.shape[0]
            with torch.no_grad(), self._autocast():
                kp_driving = keypoint_transformation(avatar.kp_canonical.expand(n, -1, -1), self.mapping(batch))
                out = self.generator.decode(avatar.feature.expand(n, -1, -1, -1, -1),
                                            avatar.kp_source.expand(n, -1, -1), kp_driving)["prediction"]
            images = (out.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            if self.enhancer is not None:
                images = self._enhance(images)
            for img in images:
                yield self._finish(avatar, img)

    def coefficients(self, avatar: Avatar, audio: Audio, frames: int) -> np.ndarray:
        """(frames, coeff_nc) driving coefficients: predicted expression and smoothed head pose,
        scaled and overridden as the options say (upstream ``get_data`` + ``Audio2Coeff`` +
        ``get_facerender_data``)."""
        from THG.sadtalker.audio2exp import predict_expression
        from THG.sadtalker.audio2pose import num_windows, smooth_pose
        from THG.sadtalker.mel import indiv_mels

        o = self.options
        mels = torch.from_numpy(indiv_mels(_resample_16k(audio), frames))[None, :, None].to(self.device)
        ref = np.repeat(avatar.coeffs[None, :70], frames, axis=0)
        if o.ref_eyeblink:  # upstream: the video's expression per frame in place of the portrait's, no random blinks
            ref[:, :64] = _loop(self.reference_coefficients(o.ref_eyeblink)[:, :64], frames)
            ratio = np.zeros((frames, 1), dtype=np.float32)
        else:
            ratio = blink_ratio(frames, np.random.default_rng(o.seed))
        ref = torch.from_numpy(ref)[None].to(self.device)
        ratio = torch.from_numpy(ratio)[None].to(self.device)
        gen = torch.Generator().manual_seed(o.seed)
        zs = [torch.randn(1, 64, generator=gen).to(self.device) for _ in range(num_windows(frames))]
        with torch.no_grad():
            exp = predict_expression(self.audio2exp, mels, ref, ratio)[0].cpu().numpy()
            motion = self.audio2pose(mels, ref, torch.tensor([o.pose_style], device=self.device), zs)
            pose = smooth_pose((ref[:, :1, 64:70] + motion).cpu().numpy())[0]
        if o.ref_pose:  # upstream ``using_refpose``: the video's motion relative to its first frame, added
            video = self.reference_coefficients(o.ref_pose)[:, 64:70]
            pose = pose + (_loop(video, frames) - video[:1])
        coeffs = np.concatenate([exp * o.expression_scale, pose], axis=1).astype(np.float32)
        if self.coeff_nc > 70:  # the full-mode mapping also sees the (fixed) crop parameters
            coeffs = np.concatenate([coeffs, np.repeat(avatar.coeffs[None, 70:], frames, axis=0)], axis=1)
        if o.still:
            coeffs[:, 64:] = avatar.coeffs[64:]
        return coeffs

    def _enhance(self, faces: np.ndarray) -> np.ndarray:
        """GFPGAN on the rendered crops; they are FFHQ-style already, so no box is needed."""
        import cv2

        size = self.enhancer.face_size
        big = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in faces])
        out = self.enhancer.enhance_faces(big)
        n = faces.shape[1]
        return np.stack([cv2.resize(f, (n, n), interpolation=cv2.INTER_AREA) for f in out])

    def _finish(self, avatar: Avatar, face: np.ndarray) -> np.ndarray:
        import cv2

        from THG.sadtalker.face import paste

        x1, y1, x2, y2 = avatar.box
        if self.options.preprocess == "full":
            return paste(avatar.image, face, avatar.box, avatar.mask)
        # upstream keeps the crop's aspect ratio at the rendered width
        size = self.render_size
        height = int(size * (y2 - y1) / (x2 - x1))
        return face if height == size else cv2.resize(face, (size, height))

    def _autocast(self):
        import contextlib

        if self.options.fp16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()


def blink_ratio(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 1) eye-closure targets: a 5-frame blink every 10-70 frames (none in clips of 20 frames
    or fewer), as upstream's ``generate_blink_seq_randomly``, drawn from ``rng``."""
    ratio = np.zeros((frames, 1), dtype=np.float32)
    if frames <= 20:
        return ratio
    frame_id = 0
    while True:
        lo, hi = min(10, frames), min(frames // 2, 70)
        start = int(rng.integers(lo, hi)) if hi > lo else lo
        if frame_id + start + 5 > frames - 1:
            return ratio
        ratio[frame_id + start:frame_id + start + 5, 0] = [0.5, 0.9, 1.0, 0.9, 0.5]
        frame_id += start + 5


def _loop(rows: np.ndarray, frames: int) -> np.ndarray:
    """The first ``frames`` rows of ``rows`` repeated end to end (upstream's tiling of reference videos)."""
    return rows[np.arange(frames) % len(rows)]


def _verify_options(o: SadTalkerTHG.Options) -> None:
    if o.size not in SIZES:
        raise TalkerError(f"SadTalker size {o.size} is not available; sizes = {list(SIZES)}")
    if o.render_size and (o.render_size < 128 or o.render_size % 128):
        # the keypoint detector works at 1/4 of the size and halves that 5 times
        raise TalkerError(f"render_size must be 0 or a multiple of 128, got {o.render_size}")
    if o.preprocess not in PREPROCESS:
        raise TalkerError(f"unknown SadTalker preprocess {o.preprocess!r}; choices = {list(PREPROCESS)}")
    if not 0 <= o.pose_style < NUM_POSE_STYLES:
        raise TalkerError(f"pose_style must be in 0..{NUM_POSE_STYLES - 1}, got {o.pose_style}")
    if o.batch_size < 1:
        raise TalkerError(f"batch_size must be at least 1, got {o.batch_size}")
    if not math.isfinite(o.expression_scale):
        raise TalkerError(f"expression_scale must be a finite number, got {o.expression_scale}")




def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise BadInputError(f"the portrait must be an RGB uint8 image, got shape {image.shape} {image.dtype}")
    return np.ascontiguousarray(image[:, :, :3])


def _to_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device)


def _resample_16k(audio: Audio) -> np.ndarray:
    samples = np.asarray(audio.samples, dtype=np.float32)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if audio.sample_rate == 16000:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(int(audio.sample_rate), 16000)
    return resample_poly(samples, 16000 // g, int(audio.sample_rate) // g).astype(np.float32)
