"""The photo side of Ditto: where the face is, the rotated square crop the networks see, the eye
measures the LMDM is conditioned on, and pasting the rendered crop back with a feathered edge.

Upstream finds the face with InsightFace (non-commercial licence) and LivePortrait's 203-point
landmarks. Here MediaPipe's face mesh (it ships in its wheel) gives the points instead: eye centres
and mouth centre for the roll and the face's vertical axis, and the jaw line, brows, eyes, nose and
lips for the box, the parts the 203 points cover (not the forehead, which the mesh also spans). The
crop geometry from those points is upstream's (``crop_image``): the box of the points in the face's
own axes, squared, scaled by ``crop_scale``, shifted along the face axis by ``crop_vy`` of its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Face-mesh indices (the canonical 468-point topology; 468-477 are the refined irises).
EYE_LEFT = (33, 160, 158, 133, 153, 144)  # contour of the eye on the image's left
EYE_RIGHT = (362, 385, 387, 263, 373, 380)
MOUTH = (0, 17)  # upper lip top, lower lip bottom: their middle is the mouth centre
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 336, 296, 334, 293, 300, 285, 295, 282, 283, 276)
NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327)
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
BOX = JAW + BROWS + EYE_LEFT + EYE_RIGHT + NOSE + LIPS

# upstream EyeAttrUtilsByMP: eye corners and three lid pairs per eye, iris centres
EYE_WIDTH = ((33, 133), (263, 362))
EYE_LIDS = (((145, 159), (144, 160), (153, 158)), ((374, 386), (373, 387), (380, 385)))
IRIS = (468, 473)


@dataclass(frozen=True)
class FacePoints:
    """The points the crop needs, in pixels."""

    box: np.ndarray  # (n, 2) points whose extent makes the box
    eye_left: np.ndarray  # (2,)
    eye_right: np.ndarray
    mouth: np.ndarray


def face_points(mesh: np.ndarray) -> FacePoints:
    """(468+, 2) face-mesh pixels -> the crop's points."""
    mesh = np.asarray(mesh, np.float32)
    return FacePoints(box=mesh[list(BOX)], eye_left=mesh[list(EYE_LEFT)].mean(0),
                      eye_right=mesh[list(EYE_RIGHT)].mean(0), mouth=mesh[list(MOUTH)].mean(0))


def crop_matrix(p: FacePoints, dsize: int, scale: float = 2.3, vy: float = -0.125, rotate: bool = True) -> np.ndarray:
    """3x3 float32 transform from photo pixels to the ``dsize`` square crop (upstream's
    ``_estimate_similar_transform_from_pts``; its ``vx`` shift is not applied upstream either)."""
    uy = p.mouth - (p.eye_left + p.eye_right) / 2  # down the face
    length = float(np.linalg.norm(uy))
    uy = np.array([0, 1], np.float32) if length <= 1e-3 else (uy / length).astype(np.float32)
    ux = np.array([uy[1], -uy[0]], np.float32)
    angle = math.acos(float(ux[0])) * (-1 if ux[1] < 0 else 1)
    axes = np.stack([ux, uy])
    centre0 = p.box.mean(axis=0)
    local = (p.box - centre0) @ axes.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    size = float(max(hi[0] - lo[0], hi[1] - lo[1])) * scale
    mid = (lo + hi) / 2
    centre = centre0 + ux * mid[0] + uy * mid[1] + uy * (vy * size)
    s = dsize / size
    t = dsize / 2
    if rotate:
        c, sn = math.cos(angle), math.sin(angle)
        m = [[s * c, s * sn, t - s * (c * centre[0] + sn * centre[1])],
             [-s * sn, s * c, t - s * (-sn * centre[0] + c * centre[1])]]
    else:
        m = [[s, 0, t - s * centre[0]], [0, s, t - s * centre[1]]]
    return np.vstack([np.array(m, np.float32), np.array([0, 0, 1], np.float32)])


def crop(image: np.ndarray, m: np.ndarray, dsize: int) -> np.ndarray:
    return cv2.warpAffine(image, m[:2], (dsize, dsize), flags=cv2.INTER_LINEAR)


def eye_measures(lmk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) normalised refined face-mesh points of the crop -> eye openness (1, 2) (lid gaps over eye
    width, left then right) and eye-ball offsets (1, 6) (x, y, z of each iris from the eye centre, less
    the eye's own direction, times its distance), as upstream's ``EyeAttrUtilsByMP``."""
    lmk = np.asarray(lmk, np.float32)

    def dist(a, b):
        return float(np.sqrt(((lmk[a] - lmk[b]) ** 2).sum()))

    def direction(a, b):  # from b to a, of points
        v = a - b
        return v / (float(np.sqrt((v ** 2).sum())) + 1e-8)

    opens, moves = [], []
    for (o, i), lids, iris in zip(EYE_WIDTH, EYE_LIDS, IRIS, strict=True):
        width = dist(o, i)
        opens.append(sum(dist(a, b) for a, b in lids) / (width + 1e-8))
        centre = (lmk[o] + lmk[i]) * 0.5
        ball = lmk[iris]
        move = float(np.sqrt(((ball - centre) ** 2).sum()))
        moves.append((direction(ball, centre) - direction(lmk[o], lmk[i])) * move)
    return (np.array(opens, np.float32).reshape(1, 2),
            np.stack(moves, axis=-1).astype(np.float32).reshape(1, 6))


def feather_mask(w: int, h: int, ratio_w: float = 0.9, ratio_h: float = 0.9) -> np.ndarray:
    """(h, w) float32 paste-back weights (upstream ``get_mask``): 1 in the central ``ratio`` of the
    square, linear ramps to 0 across the border bands, and in the corners 1 - distance from the inner
    corner (in band widths)."""
    iw, ih = int(w * ratio_w), int(h * ratio_h)
    x1, y1 = (w - iw) // 2, (h - ih) // 2
    x2, y2 = x1 + iw, y1 + ih
    mask = np.ones((h, w), np.float32)
    top, bottom = np.linspace(0, 1, y1), np.linspace(1, 0, h - y2)
    left, right = np.linspace(0, 1, x1), np.linspace(1, 0, w - x2)
    mask[:y1, x1:x2] = top[:, None]
    mask[y2:, x1:x2] = bottom[:, None]
    mask[y1:y2, :x1] = left[None]
    mask[y1:y2, x2:] = right[None]

    def corner(rows, cols):  # rows/cols: 1 at the outer edge, 0 at the inner corner
        return 1 - np.clip(np.sqrt(rows[:, None] ** 2 + cols[None] ** 2), 0, 1)

    mask[:y1, :x1] = corner(np.linspace(1, 0, y1), np.linspace(1, 0, x1))
    mask[:y1, x2:] = corner(np.linspace(1, 0, y1), np.linspace(0, 1, w - x2))
    mask[y2:, :x1] = corner(np.linspace(0, 1, h - y2), np.linspace(1, 0, x1))
    mask[y2:, x2:] = corner(np.linspace(0, 1, h - y2), np.linspace(0, 1, w - x2))
    return mask.astype(np.float32)


class PasteBack:
    """Blends rendered crops into the photo through the feathered mask warped back to the photo
    (upstream ``PutBackNumpy``). Work is limited to the crop's bounding box in the photo."""

    def __init__(self, photo: np.ndarray, m_o2c: np.ndarray, dsize: int):
        self.photo = photo
        h, w = photo.shape[:2]
        self.m_c2o = np.linalg.inv(m_o2c.astype(np.float64)).astype(np.float32)
        corners = np.array([[0, 0], [dsize, 0], [0, dsize], [dsize, dsize]], np.float32)
        pts = corners @ self.m_c2o[:2, :2].T + self.m_c2o[:2, 2]
        x0, y0 = np.floor(pts.min(0)).astype(int) - 1
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        self.box = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
        bx, by, bx1, by1 = self.box
        self.shift = self.m_c2o[:2].copy()
        self.shift[:, 2] -= (bx, by)
        self.size = (max(bx1 - bx, 0), max(by1 - by, 0))
        self.mask = None
        if self.size[0] and self.size[1]:
            m = cv2.warpAffine(feather_mask(dsize, dsize), self.shift, self.size, flags=cv2.INTER_LINEAR)
            self.mask = np.clip(m, 0, 1)[..., None]
        self.dsize = dsize

    def __call__(self, render: np.ndarray) -> np.ndarray:
        """(dsize, dsize, 3) float RGB in 0..255 -> a copy of the photo with it pasted in."""
        out = self.photo.copy()
        if self.mask is None:
            return out
        bx, by, bx1, by1 = self.box
        face = cv2.warpAffine(np.asarray(render, np.float32), self.shift, self.size, flags=cv2.INTER_LINEAR)
        region = out[by:by1, bx:bx1].astype(np.float32)
        out[by:by1, bx:bx1] = np.clip(self.mask * face + (1 - self.mask) * region, 0, 255).astype(np.uint8)
        return out
