"""A living face between answers: small head motion and blinks over any backend's frames, or the
backend's own idle clip where it renders one (``IdleClip``).

A frozen photo reads as a broken stream. ``IdleMotion`` adds a slow, smooth sway (a tiny rotation
and shift about the face) and a blink every few seconds (the eye regions darkened and squashed for
about 150 ms). It works on any RGB frame, so every talking-head backend gets it; it is applied to
speaking frames too, so the head does not jump when an answer starts or stops.

Eyes are placed once per portrait from OpenCV's Haar face cascade (shipped with opencv-python-headless
< 5); when no face is found the avatar still sways, it just does not blink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app_modules.blink import BlinkSchedule


@dataclass(frozen=True)
class IdleOptions:
    """How much the idle face moves."""

    sway_degrees: float = 1.2  # largest head rotation
    sway_pixels: float = 2.5  # largest shift, at a 512-pixel frame (scaled with the frame)
    blink_every_s: float = 4.0  # mean time between blinks (jittered so they do not tick like a clock)
    blink_s: float = 0.16  # how long the eyes stay (partly) closed
    seed: int = 0


def find_eyes(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Eye boxes (x, y, w, h) in an RGB portrait, placed by the proportions of the largest face found.

    The face cascade is far more reliable than the eye cascade (glasses, small eyes), and a blink
    only needs the eyes roughly right: the shading is soft-edged."""
    import cv2

    path = getattr(cv2, "data", None)
    if path is None or not hasattr(cv2, "CascadeClassifier"):
        return []
    cascade = cv2.CascadeClassifier(str(path.haarcascades) + "/haarcascade_frontalface_default.xml")
    if cascade.empty():
        return []
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
    if len(faces) == 0:
        return []
    fx, fy, fw, _ = max((tuple(int(v) for v in f) for f in faces), key=lambda f: f[2] * f[3])
    ew, eh = int(0.22 * fw), int(0.14 * fw)
    return [(int(fx + cx * fw - ew / 2), int(fy + 0.37 * fw - eh / 2), ew, eh) for cx in (0.31, 0.69)]


class IdleMotion:
    """Turns a frame and a time into the same frame with sway and blinks applied."""

    def __init__(self, base: np.ndarray, options: IdleOptions = IdleOptions(), eyes=None):
        self.options = options
        self.base = base
        h, w = base.shape[:2]
        self.size = (w, h)
        self.eyes = find_eyes(base) if eyes is None else list(eyes)
        self.centre = self._face_centre()
        rng = np.random.default_rng(options.seed)
        # incommensurate frequencies: the sway never visibly repeats
        self._phases = rng.uniform(0, 2 * math.pi, 3)
        # the same schedule as the lite talking head's own blinks (one rate, one lid motion)
        self.blinks = BlinkSchedule(options.blink_every_s, options.blink_s, seed=options.seed)
        self._blinks = self.blinks.times

    def _face_centre(self) -> tuple[float, float]:
        w, h = self.size
        if len(self.eyes) == 2:
            (x0, y0, w0, h0), (x1, y1, w1, h1) = self.eyes
            return (x0 + w0 / 2 + x1 + w1 / 2) / 2, (y0 + y1) / 2 + (h0 + h1) / 2
        return w / 2, h / 2

    def blink_amount(self, t: float) -> float:
        """0 (open) .. 1 (closed) at time ``t``."""
        return self.blinks.amount(t)

    def apply(self, frame: np.ndarray, t: float, blink: bool = True) -> np.ndarray:
        """``frame`` at time ``t`` (seconds) with the idle sway and, when due (and ``blink``), a blink.

        A backend that blinks in its own frames (``lite``) passes ``blink=False`` for them."""
        import cv2

        o = self.options
        if frame.shape[:2] != (self.size[1], self.size[0]):
            return frame  # another size (a backend that crops differently): leave it alone
        b = self.blink_amount(t) if blink else 0.0
        if b > 0.05 and self.eyes:
            frame = frame.copy()
            for x, y, w, h in self.eyes:
                _close_eye(frame, x, y, w, h, b)
        p = self._phases
        angle = o.sway_degrees * (0.6 * math.sin(0.9 * t + p[0]) + 0.4 * math.sin(0.37 * t + p[1]))
        scale_px = o.sway_pixels * max(self.size) / 512
        dx = scale_px * math.sin(0.53 * t + p[2])
        dy = scale_px * 0.6 * math.sin(0.71 * t + p[0])
        m = cv2.getRotationMatrix2D(self.centre, angle, 1.0)
        m[:, 2] += (dx, dy)
        return cv2.warpAffine(frame, m, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def frame(self, t: float) -> np.ndarray:
        """The idle frame at time ``t``."""
        return self.apply(self.base, t)

    def over(self, frame: np.ndarray, t: float, blink: bool = True) -> np.ndarray:
        """A speaking frame at time ``t``: swayed like the idle face, so the head does not jump (and
        blinked, unless the backend blinks in its own frames)."""
        return self.apply(frame, t, blink=blink)


class IdleClip:
    """Idle frames a backend rendered itself (Ditto: its motion model fed silence), played back and
    forth so the loop has no seam. Speaking frames already move; they pass through untouched."""

    def __init__(self, frames: list[np.ndarray], fps: int):
        if not frames:
            raise ValueError("an idle clip needs at least one frame")
        self.frames, self.fps = frames, fps
        self.base = frames[0]

    def frame(self, t: float) -> np.ndarray:
        n = len(self.frames)
        if n == 1:
            return self.base
        i = int(t * self.fps) % (2 * n - 2)
        return self.frames[i if i < n else 2 * n - 2 - i]

    def over(self, frame: np.ndarray, t: float, blink: bool = True) -> np.ndarray:
        return frame


def _close_eye(frame: np.ndarray, x: int, y: int, w: int, h: int, amount: float) -> None:
    """Squash the eye towards its lower lid and shade it like a lid: cheap, and reads as a blink."""
    import cv2

    eye = frame[y:y + h, x:x + w].astype(np.float32)
    if eye.size == 0:
        return
    # the lid colour: the skin just above the eye
    above = frame[max(0, y - h // 3):y, x:x + w]
    lid = above.reshape(-1, 3).mean(0) if above.size else eye.reshape(-1, 3).mean(0)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, int(w * 0.42)), max(1, int(h * 0.32))), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 12))[..., None] * amount
    # darken a little along the lash line as well, so the closed lid has an edge
    shaded = lid * (1.0 - 0.12 * amount)
    frame[y:y + h, x:x + w] = (eye * (1 - mask) + shaded * mask).astype(np.uint8)
