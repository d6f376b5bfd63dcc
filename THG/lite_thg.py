"""A fast CPU talking head that needs no downloaded weights.

Face landmarks come from MediaPipe's face mesh (``THG.face_mesh``; the model ships in the wheel). The
loudness of the speech drives how far the mouth opens: the lower lip and jaw are pulled down by a
smooth displacement field, and the gap is painted as the inside of a mouth in colours taken from the
portrait's own lips and skin: a dark throat shaded lighter towards the lips, upper teeth under the
upper lip, a tongue once the mouth is wide, soft edges and a little shadow on the lips around it.
The eyes blink on the shared schedule (``app_modules.blink``): the upper lid's skin slides down
over the eye.

Everything that depends only on the portrait is computed once in ``prepare``; a frame is then one
``cv2.remap`` of the lower face and one small blur over the mouth, hundreds of frames a second on
two cores.

It is a fallback so the app works before any weights are downloaded, not a replacement for
Wav2Lip or SadTalker.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app_modules.blink import BlinkSchedule
from app_modules.errors import BadInputError, TalkerError
from app_modules.media import frame_count, limit_size
from app_modules.options import Declared, option
from app_modules.types import Audio
from THG.base import THG

# Face-mesh indices (the canonical 468-point topology), each lip contour from one corner to the other.
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_LEFT, MOUTH_RIGHT, CHIN, NOSE_TIP = 61, 291, 152, 1
# cheeks beside the nose: skin away from lips, beard line and eye shadows
CHEEKS = (50, 280, 205, 425, 36, 266)
# each eye: (outer corner, upper lid..., inner corner) and (outer corner, lower lid..., inner corner)
# how far the upper lip lifts, as a fraction of the jaw's drop
LIP_LIFT = 0.18
EYES = (((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133)),
        ((263, 466, 388, 387, 386, 385, 384, 398, 362), (263, 249, 390, 373, 374, 380, 381, 382, 362)))


@dataclass
class MouthColours:
    """The inside of this portrait's mouth, RGB float32, derived from its lips and skin."""

    throat: np.ndarray  # deepest shade, at the middle of a wide opening
    inner: np.ndarray  # just inside the lips
    tongue: np.ndarray
    teeth: np.ndarray


@dataclass
class EyeLid:
    """One eye's box (image coordinates) and its lid lines, one value per column of the box."""

    box: tuple[int, int, int, int]
    grid_x: np.ndarray  # (h, w) float32 column of each pixel, box coordinates
    grid_y: np.ndarray  # (h, w) float32 row of each pixel
    upper: np.ndarray  # (w,) row of the upper lid's edge
    lower: np.ndarray  # (w,) row of the lower lid's edge (upper == lower outside the eye)


@dataclass
class LiteAvatar:
    image: np.ndarray  # RGB uint8, the frame every output frame starts from
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the lower face, where frames change
    weight: np.ndarray  # (h, w) float32 in [0, 1]: how much each pixel of the box follows the jaw
    grid_x: np.ndarray
    grid_y: np.ndarray
    upper: np.ndarray  # (n, 2) the opening's top edge when closed (the lower lip's inner edge), box coordinates
    lower: np.ndarray  # (n, 2) its bottom edge when closed (the same line)
    upper_weight: np.ndarray  # (n,) how far each top-edge point moves per pixel of drop (negative: up)
    lower_weight: np.ndarray  # (n,) how far each bottom-edge point drops, 0 at the corners
    max_open: float  # pixels the lower lip drops at full loudness
    mouth_w: float
    paint_teeth: bool  # False when the photo shows its own teeth between the lips
    colours: MouthColours
    eyes: list[EyeLid]


class LiteTHG(THG):
    """Landmark-driven mouth motion and blinks on a still portrait."""

    blinks = True  # blinks in its own frames: the real-time idle face does not blink over them

    @dataclass(frozen=True)
    class Options(Declared, label="lite"):
        # how far the mouth opens at full loudness, as a fraction of the mouth's width
        open_scale: float = option(0.35, min=0.05, max=1.0, step=0.05, visitor=True)
        # largest side of the output video; larger portraits are scaled down
        max_side: int = option(720, min=64, max=4096)
        fps: int = option(25, min=1, max=60)
        # mean seconds between blinks (0: never blink) and how long one takes
        blink_every_s: float = option(4.0, min=0, max=60, step=0.5, visitor=True)
        blink_s: float = option(0.16, min=0.05, max=0.5, step=0.01, visitor=True)

        def __post_init__(self):
            super().__post_init__()
            if self.blink_every_s and self.blink_every_s < 1.0:
                raise TalkerError(f"lite.blink_every_s must be 0 (never) or between 1 and 60 s, got "
                                  f"{self.blink_every_s}")

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
        img = np.ascontiguousarray(img[: h // 2 * 2, : w // 2 * 2])
        lm = self._mesh(img)
        if lm is None:
            raise BadInputError("no face found in the image: use a clear, front-facing photo of one person")
        return _build_avatar(img, lm.astype(np.float32), self.options.open_scale)

    def render(self, avatar: LiteAvatar, audio: Audio) -> Iterator[np.ndarray]:
        o = self.options
        blinks = None
        if o.blink_every_s and avatar.eyes:
            # one schedule per sentence, seeded by its sound: the same sentence renders the same way,
            # and the first blink comes anywhere in the first few seconds, so short sentences blink too
            seed = zlib.crc32(audio.samples[: audio.sample_rate].tobytes()) ^ len(audio.samples)
            blinks = BlinkSchedule(o.blink_every_s, o.blink_s, seed=seed, start_s=1.0, first_gap=(0.0, 1.0))
        for i, openness in enumerate(mouth_openness(audio, self.fps)):
            yield render_frame(avatar, float(openness), blinks.amount(i / self.fps) if blinks else 0.0)


def render_frame(avatar: LiteAvatar, openness: float, blink: float = 0.0) -> np.ndarray:
    """The portrait with the mouth ``openness`` (0..1) open and the eyes ``blink`` (0..1) closed."""
    import cv2

    frame = avatar.image.copy()
    if openness > 0.02:
        x0, y0, x1, y1 = avatar.box
        drop = openness * avatar.max_open
        map_y = avatar.grid_y - drop * avatar.weight
        crop = cv2.remap(avatar.image[y0:y1, x0:x1], avatar.grid_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        _paint_mouth(crop, avatar, drop)
        frame[y0:y1, x0:x1] = crop
    if blink > 0.02:
        for eye in avatar.eyes:
            _close_eye(frame, avatar.image, eye, blink)
    return frame


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


# ------------------------------------------------------------------------------------------ prepare

def _build_avatar(img: np.ndarray, lm: np.ndarray, open_scale: float) -> LiteAvatar:
    import cv2

    h, w = img.shape[:2]
    left, right, chin, nose = lm[MOUTH_LEFT], lm[MOUTH_RIGHT], lm[CHIN], lm[NOSE_TIP]
    mouth_w = float(np.linalg.norm(right - left))
    if mouth_w < 8:
        raise BadInputError("the face in the image is too small: use a photo where the face fills more of the frame")
    centre = (left + right) / 2
    upper_lm, lower_lm = lm[list(UPPER_INNER)], lm[list(LOWER_INNER)]
    mouth_y = float(upper_lm[:, 1].mean())
    chin_y, nose_y = float(chin[1]), float(nose[1])
    max_open = open_scale * mouth_w
    # the box covers the lower face plus room below the chin for the jaw to move into
    x0 = int(max(0, centre[0] - 1.3 * mouth_w))
    x1 = int(min(w, centre[0] + 1.3 * mouth_w))
    y0 = int(max(0, nose_y))
    y1 = int(min(h, chin_y + 1.2 * max_open + 0.6 * (chin_y - mouth_y)))
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    dx = np.abs(gx - centre[0]) / (0.5 * mouth_w)  # 0 in the middle of the mouth, 1 at its corners
    # The jaw parts along the lower lip's inner edge, per column (flat beyond the corners): whatever
    # shows between the lips in the photo (a smile's upper teeth) stays with the upper lip, as teeth
    # fixed to the skull do, and only the newly opened gap below it is painted.
    line = _polyline_rows(lower_lm, gx[0])[None, :]
    # How far each pixel follows the jaw (1: all the way down), built so that no row of skin folds
    # over another. Right under the parting line the lower lip drops in the shape of an open mouth,
    # widest in the middle and still at the corners (the jump there is the opening, painted over).
    # Everywhere else the pull grows slowly enough (over three times the largest drop) that the
    # skin stretches smoothly: the chin moves as one piece and the cheeks beside the corners
    # stretch instead of tearing or smearing into streaks.
    inner_half = max(0.5 * float(np.linalg.norm(lower_lm[-1] - lower_lm[0])), 2.0)  # to the inner corners
    lip_profile = np.clip(1.0 - (np.abs(gx - centre[0]) / inner_half) ** 2, 0.0, 1.0) ** 0.6
    jaw_profile = np.exp(-np.maximum(dx - 1.1, 0.0) ** 2 / 0.6)
    ramp = np.clip((gy - line + 1.0) / 2.0, 0.0, 1.0)
    grow = np.clip((gy - line) / max(3.0 * max_open, 0.3 * (chin_y - mouth_y), 4.0), 0.0, 1.0)
    grow = grow * grow * (3 - 2 * grow)
    below_chin = np.maximum(gy - chin_y, 0.0) / max(0.5 * (chin_y - mouth_y) + max_open, 1.0)
    fade = np.exp(-3.0 * below_chin**2)
    down = np.maximum(jaw_profile * grow, ramp * lip_profile) * fade
    # the upper lip lifts a little as the jaw drops, fading out towards the nose
    up = np.clip(1.0 - (line - gy) / max(line.mean() - nose_y, 1.0), 0.0, 1.0) ** 1.2
    lift = (1.0 - ramp) * -LIP_LIFT * lip_profile * up
    # nothing moves at the box's edges, so the changed crop has no seam in the frame
    sides = np.minimum(gx - x0, x1 - 1 - gx) / max(0.15 * mouth_w, 1.0)
    edge = np.minimum(sides, (y1 - 1 - gy) / max(0.1 * (y1 - y0), 1.0))
    weight = ((down + lift) * np.clip(edge, 0.0, 1.0)).astype(np.float32)
    # a light horizontal blur smooths what is left of the shear where the pull fades into the cheek
    weight = cv2.GaussianBlur(weight, (0, 0), sigmaX=max(0.8, 0.05 * mouth_w), sigmaY=0.5)
    to_box = np.array([x0, y0], np.float32)
    # the opening's edges move exactly as the pixels on either side of the parting line do
    parting = lower_lm - to_box
    upper_weight = np.minimum(_sample(weight, parting + (0, -1.5)), 0.0)
    lower_weight = np.maximum(_sample(weight, parting + (0, 1.5)), 0.0)
    # a photo with the lips already apart shows its own teeth: no painted ones under them
    middle = slice(3, len(UPPER_INNER) - 3)
    teeth_shown = float(np.median(lower_lm[middle, 1] - upper_lm[middle, 1])) > 0.05 * mouth_w
    return LiteAvatar(img, (x0, y0, x1, y1), weight, gx - x0, gy - y0, parting.copy(), parting, upper_weight,
                      lower_weight, max_open, mouth_w, not teeth_shown, _mouth_colours(img, lm),
                      [e for e in (_eye_lid(img, lm, up_ids, low_ids) for up_ids, low_ids in EYES) if e is not None])


def _sample(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = field.shape
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    return field[ys, xs].astype(np.float32)


def _region_colour(img: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray | None:
    """Median RGB inside the polygons (image coordinates), robust to glare and stray pixels."""
    import cv2

    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [p.astype(np.int32) for p in polygons], 255)
    pixels = img[mask > 0]
    return np.median(pixels, axis=0).astype(np.float32) if len(pixels) >= 8 else None


def _mouth_colours(img: np.ndarray, lm: np.ndarray) -> MouthColours:
    lips = _region_colour(img, [np.concatenate([lm[list(UPPER_OUTER)], lm[list(UPPER_INNER)][::-1]]),
                                np.concatenate([lm[list(LOWER_OUTER)], lm[list(LOWER_INNER)][::-1]])])
    r = max(3.0, 0.06 * float(np.linalg.norm(lm[MOUTH_RIGHT] - lm[MOUTH_LEFT])))
    square = np.array([[-r, -r], [r, -r], [r, r], [-r, r]], np.float32)
    skin = _region_colour(img, [lm[i] + square for i in CHEEKS])
    if lips is None:
        lips = np.array((170, 95, 90), np.float32)
    if skin is None:
        skin = lips
    # the inside of a mouth is the lips' own red, deepened: pale or made-up lips still give a warm mouth
    red = lips * np.array((1.0, 0.55, 0.55), np.float32) + np.array((20, 0, 0), np.float32)
    light = float(np.clip((0.299 * skin[0] + 0.587 * skin[1] + 0.114 * skin[2]) / 180.0, 0.72, 1.0))
    teeth = np.array((236, 228, 212), np.float32) * light
    tongue = 0.45 * red * 0.9 + 0.55 * np.array((190, 96, 98), np.float32) * light
    return MouthColours(throat=np.clip(red * 0.13, 0, 255), inner=np.clip(red * 0.5, 0, 255),
                        tongue=np.clip(tongue, 0, 255), teeth=np.clip(teeth, 0, 255))


def _eye_lid(img: np.ndarray, lm: np.ndarray, upper_ids: tuple[int, ...],
             lower_ids: tuple[int, ...]) -> EyeLid | None:
    """The lid lines of one eye, per pixel column, and a box reaching up over the lid's skin."""
    h, w = img.shape[:2]
    up, low = lm[list(upper_ids)], lm[list(lower_ids)]
    xs0, xs1 = float(min(up[:, 0].min(), low[:, 0].min())), float(max(up[:, 0].max(), low[:, 0].max()))
    opening = float((low[:, 1] - up[:, 1]).max()) if len(up) == len(low) else 0.0
    eye_w = xs1 - xs0
    if eye_w < 6 or opening < 1.5:
        return None  # too small, or closed already in the photo: nothing to blink
    pad = max(2, int(0.15 * eye_w))
    bx0, bx1 = max(0, int(xs0) - pad), min(w, int(np.ceil(xs1)) + pad)
    top = float(up[:, 1].min()) - 1.2 * opening  # the lid's skin, up towards the crease
    by0, by1 = max(0, int(top)), min(h, int(np.ceil(low[:, 1].max())) + 3)
    if bx1 - bx0 < 4 or by1 - by0 < 4:
        return None
    cols = np.arange(bx0, bx1, dtype=np.float32)
    upper = _polyline_rows(up, cols)
    lower = _polyline_rows(low, cols)
    inside = (cols >= xs0) & (cols <= xs1)
    lower = np.where(inside, np.maximum(lower, upper), upper)
    gx, gy = np.meshgrid(np.arange(bx1 - bx0, dtype=np.float32), np.arange(by1 - by0, dtype=np.float32))
    return EyeLid((bx0, by0, bx1, by1), gx, gy, (upper - by0).astype(np.float32), (lower - by0).astype(np.float32))


def _polyline_rows(points: np.ndarray, cols: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(cols, points[order, 0], points[order, 1]).astype(np.float32)


# ------------------------------------------------------------------------------------------- frames

def _paint_mouth(crop: np.ndarray, avatar: LiteAvatar, drop: float) -> None:
    """Paint the opened gap as the inside of a mouth, blended softly into the lips around it."""
    import cv2

    upper, lower = avatar.upper.copy(), avatar.lower.copy()
    upper[:, 1] += drop * avatar.upper_weight
    lower[:, 1] += drop * avatar.lower_weight
    poly = np.concatenate([upper, lower[::-1]])
    # work on the opening's neighbourhood only, with per-column profiles where the shading allows:
    # a frame is one small blur and a few dozen array operations on a few thousand pixels
    pad = int(4 + 0.12 * avatar.mouth_w)
    h, w = crop.shape[:2]
    rx0, ry0 = max(0, int(poly[:, 0].min()) - pad), max(0, int(poly[:, 1].min()) - pad)
    rx1, ry1 = min(w, int(np.ceil(poly[:, 0].max())) + pad), min(h, int(np.ceil(poly[:, 1].max())) + pad)
    if rx1 - rx0 < 3 or ry1 - ry0 < 3:
        return
    region = crop[ry0:ry1, rx0:rx1]
    origin = np.array([rx0, ry0], np.float32)
    shift = 8  # sub-pixel polygon edges (cv2 fixed point): the opening grows smoothly, not in steps
    mask = np.zeros(region.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round((poly - origin) * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    if not mask.any():
        return
    c = avatar.colours
    soft = max(0.7, avatar.mouth_w / 90)
    a = (cv2.GaussianBlur(mask, (0, 0), soft).astype(np.float32) * (1 / 255.0))[..., None]
    xs = np.arange(rx1 - rx0, dtype=np.float32)  # columns (1-D)
    ys = np.arange(ry1 - ry0, dtype=np.float32)[:, None]  # rows (a column vector)
    top = _polyline_rows(upper - origin, xs)
    bottom = _polyline_rows(lower - origin, xs)
    gap = np.maximum(bottom - top, 0.0) * ((xs >= poly[:, 0].min() - rx0) & (xs <= poly[:, 0].max() - rx0))
    cx = float(poly[:, 0].mean()) - rx0
    half_w = max(1.0, 0.5 * float(np.ptp(poly[:, 0])))
    across = np.minimum(np.abs(xs - cx) / half_w, 1.0)  # 0 in the middle, 1 at the corners
    middle = 1.0 - across**2
    # depth: deepest half-way down a wide part of the opening, shallow at the lips and the corners;
    # the throat is darkest where it is deepest, the lips' own dark red at the edges
    v = np.clip((ys - top) / (gap + 1e-3), 0.0, 1.0)
    depth = (4.0 * v * (1.0 - v)) * (np.sqrt(middle) * np.minimum(gap / (0.16 * avatar.mouth_w), 1.0))
    depth = np.minimum(depth * 1.3, 1.0)[..., None]
    interior = c.inner + (c.throat - c.inner) * depth
    if avatar.paint_teeth and drop > 0.04 * avatar.mouth_w:
        # upper teeth just under the upper lip: a band with crisp edges, darker towards the corners
        # (the mouth is in shadow there) and along faint gaps between the teeth
        tooth_h = min(0.32 * drop, 0.12 * avatar.mouth_w)
        below = ys - top
        band = np.clip(np.minimum(below + 1.5, tooth_h - below), 0.0, 1.0)
        band *= np.clip(1.6 * (1.0 - (across / 0.88) ** 2), 0.0, 1.0) * 0.95
        gaps = np.exp(-(np.sin(np.pi * (xs - cx) / max(0.14 * avatar.mouth_w, 2.0)) / 0.12) ** 2)
        shade = (0.62 + 0.38 * middle) * (1.0 - 0.13 * gaps)
        shade = shade * (1.0 - 0.18 * np.clip(below / (tooth_h + 1e-3), 0.0, 1.0))
        t = band[..., None]
        interior += (c.teeth * shade[..., None] - interior) * t
    if drop > 0.12 * avatar.mouth_w:
        # the tongue, a low dome at the bottom of a wide opening, lit at its tip
        height = 0.4 * drop * middle
        into = ys - (bottom - height)
        rise = np.clip(into / (0.5 * height + 1.0), 0.0, 1.0) * np.clip((0.95 - across) * 8.0, 0.0, 1.0) * 0.9
        lit = 0.8 + 0.25 * np.clip(into / (height + 1.0), 0.0, 1.0)
        interior += (c.tongue * lit[..., None] - interior) * rise[..., None]
    # a soft shadow on the lips just outside the opening gives it depth
    outside = np.maximum(top - ys, ys - bottom)
    ring = np.exp(-np.maximum(outside, 0.0) / (2.0 * soft)) * np.minimum(gap / 2.0, 1.0)
    shadow = 1.0 - 0.22 * ring[..., None] * (1.0 - a)
    out = region * (shadow * (1.0 - a)) + interior * a
    np.copyto(region, np.clip(out, 0, 255).astype(np.uint8))


def _close_eye(frame: np.ndarray, base: np.ndarray, eye: EyeLid, amount: float) -> None:
    """Slide the upper lid's skin down over the eye, ``amount`` of the way to the lower lid."""
    import cv2

    x0, y0, x1, y1 = eye.box
    edge = eye.upper + amount * (eye.lower - eye.upper)  # where the lid's edge is now, per column
    # rows above the moving edge show the lid's skin (the box's top rows down to the lid),
    # stretched down to the edge; rows below it still show the eye
    stretch = eye.upper / np.maximum(edge, 1e-3)
    above = eye.grid_y <= edge[None, :]
    map_y = np.where(above, eye.grid_y * stretch[None, :], eye.grid_y).astype(np.float32)
    lid = cv2.remap(base[y0:y1, x0:x1], eye.grid_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # a darker lash line along the lid's edge, strongest when closed
    opening = np.maximum(eye.lower - eye.upper, 0.0)
    lash = np.exp(-(((eye.grid_y - edge[None, :]) / (0.12 * opening.max() + 0.8)) ** 2))
    lash *= np.clip(opening / (opening.max() + 1e-3) * 3.0, 0.0, 1.0)[None, :]
    lid = lid.astype(np.float32) * (1.0 - 0.45 * amount * lash[..., None])
    frame[y0:y1, x0:x1] = np.clip(lid, 0, 255).astype(np.uint8)
