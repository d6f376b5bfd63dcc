"""A fast CPU talking head that needs no downloaded weights.

Face landmarks come from MediaPipe's face mesh (``THG.face_mesh``; the model ships in the wheel). The
loudness of the speech drives how far the mouth opens: the lower lip and jaw are pulled down by a
smooth displacement field and the gap is painted as the inside of a mouth. Everything that depends
only on the portrait is computed once in ``prepare``; a frame is then one ``cv2.remap`` of the lower
face and one polygon fill, far faster than real time on two cores.

It is a fallback so the app works before any weights are downloaded, not a replacement for
Wav2Lip or SadTalker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app_modules.errors import BadInputError
from app_modules.media import frame_count, limit_size
from app_modules.options import Declared, option
from app_modules.types import Audio
from THG.base import THG

# Face-mesh indices (the canonical 468-point topology).
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_LEFT, MOUTH_RIGHT, CHIN, NOSE_TIP = 61, 291, 152, 1


@dataclass
class LiteAvatar:
    image: np.ndarray  # RGB uint8, the frame every output frame starts from
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the lower face, where frames change
    weight: np.ndarray  # (h, w) float32 in [0, 1]: how much each pixel of the box follows the jaw
    grid_x: np.ndarray
    grid_y: np.ndarray
    upper: np.ndarray  # (n, 2) inner upper lip, box coordinates
    lower: np.ndarray  # (n, 2) inner lower lip, box coordinates
    lower_weight: np.ndarray  # (n,) the jaw weight at each lower-lip point
    max_open: float  # pixels the lower lip drops at full loudness


class LiteTHG(THG):
    """Landmark-driven mouth motion on a still portrait."""

    @dataclass(frozen=True)
    class Options(Declared, label="lite"):
        # how far the mouth opens at full loudness, as a fraction of the mouth's width
        open_scale: float = option(0.45, min=0, max=1.5, step=0.05, visitor=True)
        # largest side of the output video; larger portraits are scaled down
        max_side: int = option(720, min=64, max=4096)
        fps: int = option(25, min=1, max=60)

    def __init__(self, options: Options | None = None, checkpoints=None):
        self.options = options or LiteTHG.Options()
        self.fps = self.options.fps
        from THG.face_mesh import FaceMesh

        self._mesh = FaceMesh()

    def prepare(self, image: np.ndarray) -> LiteAvatar:
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            raise BadInputError("the portrait must be a colour image")
        img = limit_size(np.ascontiguousarray(image), self.options.max_side)
        h, w = img.shape[:2]
        img = img[: h // 2 * 2, : w // 2 * 2]
        h, w = img.shape[:2]
        lm = self._mesh(img)
        if lm is None:
            raise BadInputError("no face found in the image: use a clear, front-facing photo of one person")
        return _build_avatar(img, lm.astype(np.float32), self.options.open_scale)

    def render(self, avatar: LiteAvatar, audio: Audio) -> Iterator[np.ndarray]:
        import cv2

        x0, y0, x1, y1 = avatar.box
        base_crop = avatar.image[y0:y1, x0:x1]
        for openness in mouth_openness(audio, self.fps):
            frame = avatar.image.copy()
            if openness > 0.02:
                drop = openness * avatar.max_open
                map_y = avatar.grid_y - drop * avatar.weight
                crop = cv2.remap(base_crop, avatar.grid_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                _paint_mouth(crop, avatar, drop)
                frame[y0:y1, x0:x1] = crop
            yield frame


def mouth_openness(audio: Audio, fps: int) -> np.ndarray:
    """One value in [0, 1] per video frame from the loudness of the speech around that frame."""
    n = frame_count(audio, fps)
    x = audio.samples.astype(np.float32)
    if x.size == 0:
        return np.zeros(n, np.float32)
    hop = audio.sample_rate / fps
    half = int(hop)  # a window of two frames, centred on the frame
    centres = ((np.arange(n) + 0.5) * hop).astype(int)
    # RMS per frame via a cumulative sum of squares: no Python loop over samples
    csum = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    lo = np.clip(centres - half, 0, x.size)
    hi = np.clip(centres + half, 0, x.size)
    energy = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    db = 10 * np.log10(energy + 1e-10)
    peak = float(np.max(db))
    # the loudest frames open fully; 30 dB below them the mouth is closed
    level = np.clip((db - (peak - 30.0)) / 24.0, 0.0, 1.0)
    if peak < -55:  # silence
        level[:] = 0
    # quick to open, slower to close, like a jaw
    out = np.empty(n, np.float32)
    prev = 0.0
    for i, v in enumerate(level):
        prev = prev + (0.7 if v > prev else 0.35) * (v - prev)
        out[i] = prev
    return out


def _build_avatar(img: np.ndarray, lm: np.ndarray, open_scale: float) -> LiteAvatar:
    h, w = img.shape[:2]
    left, right, chin, nose = lm[MOUTH_LEFT], lm[MOUTH_RIGHT], lm[CHIN], lm[NOSE_TIP]
    mouth_w = float(np.linalg.norm(right - left))
    if mouth_w < 8:
        raise BadInputError("the face in the image is too small: use a photo where the face fills more of the frame")
    centre = (left + right) / 2
    mouth_y = float(lm[list(UPPER_INNER)][:, 1].mean())
    chin_y = float(chin[1])
    max_open = open_scale * mouth_w
    # the box covers the lower face plus room below the chin for the jaw to move into
    x0 = int(max(0, centre[0] - 1.3 * mouth_w))
    x1 = int(min(w, centre[0] + 1.3 * mouth_w))
    y0 = int(max(0, nose[1]))
    y1 = int(min(h, chin_y + 1.2 * max_open + 0.6 * (chin_y - mouth_y)))
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    # horizontally: flat across the mouth, fading out at the jaw line
    dx = np.abs(gx - centre[0]) / (0.5 * mouth_w)
    wx = np.exp(-np.maximum(dx - 1.0, 0.0) ** 2 / 0.6)
    # vertically: zero above the mouth line, one from the lower lip to the chin, fading on the neck.
    # Beyond the mouth corners the ramp widens, so the cheeks stretch instead of tearing along a line.
    outside = np.maximum(dx - 1.0, 0.0) * 0.5 * mouth_w
    ramp_top = np.clip((gy - mouth_y) / (3.0 + 1.5 * outside), 0.0, 1.0)
    below_chin = np.maximum(gy - chin_y, 0.0) / max(0.5 * (chin_y - mouth_y) + max_open, 1.0)
    wy = ramp_top * np.exp(-below_chin**2 * 2.0)
    weight = (wx * wy).astype(np.float32)
    to_box = np.array([x0, y0], np.float32)
    lower = lm[list(LOWER_INNER)] - to_box
    lower_dx = np.abs(lm[list(LOWER_INNER)][:, 0] - centre[0]) / (0.5 * mouth_w)
    lower_weight = np.exp(-np.maximum(lower_dx - 1.0, 0) ** 2 / 0.6)
    # the corners stay put: the opening is widest in the middle
    span = np.abs(lm[list(LOWER_INNER)][:, 0] - centre[0]) / (0.5 * mouth_w + 1e-6)
    lower_weight = (lower_weight * np.clip(1.0 - span**2, 0.0, 1.0)).astype(np.float32)
    return LiteAvatar(img, (x0, y0, x1, y1), weight, gx - x0, gy - y0,
                      lm[list(UPPER_INNER)] - to_box, lower, lower_weight, max_open)


def _paint_mouth(crop: np.ndarray, avatar: LiteAvatar, drop: float) -> None:
    """Fill the opened gap with a dark mouth interior, soft-edged so it blends with the lips."""
    import cv2

    lower = avatar.lower.copy()
    lower[:, 1] += drop * avatar.lower_weight
    poly = np.concatenate([avatar.upper, lower[::-1]]).astype(np.int32)
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(mask, [poly], 255)
    if not mask.any():
        return
    mask = cv2.GaussianBlur(mask, (5, 5), 0).astype(np.float32)[..., None] / 255.0
    interior = np.empty_like(crop)
    interior[:] = (58, 20, 22)
    # the upper teeth show under the upper lip once the mouth is open enough, softly edged and a
    # little darker towards the corners, where the mouth is in shadow
    if drop > 8:
        teeth = np.zeros(crop.shape[:2], np.uint8)
        shifted = avatar.upper.copy()
        span = np.abs(shifted[:, 0] - shifted[:, 0].mean()) / (np.ptp(shifted[:, 0]) / 2 + 1e-6)
        shifted[:, 1] += min(drop * 0.22, 9) * np.clip(1.0 - span**2, 0.2, 1.0)
        cv2.fillPoly(teeth, [np.concatenate([avatar.upper, shifted[::-1]]).astype(np.int32)], 255)
        t = cv2.GaussianBlur(teeth, (3, 3), 0).astype(np.float32)[..., None] / 255.0 * 0.85
        interior = (interior * (1 - t) + np.array((200, 192, 180), np.float32) * t).astype(np.uint8)
    np.copyto(crop, (crop * (1 - mask) + interior * mask).astype(np.uint8))

