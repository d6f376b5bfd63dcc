"""Finding the face and cutting it out: MediaPipe face-mesh landmarks in place of SadTalker's
RetinaFace + FAN (facexlib needs torchvision), the FFHQ-style crop box of SadTalker's ``Preprocesser``,
the 224-pixel alignment that the 3DMM network expects, and the paste-back of ``full`` mode."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Mesh indices standing in for the 68-point (iBUG) landmarks SadTalker uses: the six contour points of
# each eye (iBUG 36-41 and 42-47, image left first), the nose tip (30) and the mouth corners (48, 54).
MESH_EYE_LEFT = (33, 160, 158, 133, 153, 144)
MESH_EYE_RIGHT = (362, 385, 387, 263, 373, 380)
MESH_NOSE_TIP = 1
MESH_MOUTH = (61, 291)

# The five 3-D reference points of Deep3DFaceRecon (eye centres, nose tip, mouth corners), derived
# from BFM's similarity_Lm3D_all.mat as SadTalker's load_lm3d does.
LM3D_5 = np.array([
    [-0.31148657, 0.29036078, 0.13377953],
    [0.30979887, 0.28972036, 0.13179526],
    [0.0032535, -0.04617932, 0.55244243],
    [-0.25216928, -0.38133916, 0.22405732],
    [0.2484662, -0.38128236, 0.22235769],
])


@dataclass(frozen=True)
class Landmarks:
    """Pixel positions (x, y) of the few points the crops need."""

    eye_left: np.ndarray  # mean of the eye contour, the eye on the image's left
    eye_right: np.ndarray
    eye_left_corners: np.ndarray  # mean of the two corners (iBUG 36, 39)
    eye_right_corners: np.ndarray  # (42, 45)
    nose: np.ndarray
    mouth_left: np.ndarray
    mouth_right: np.ndarray

    def five(self) -> np.ndarray:
        """(5, 2) in Deep3DFaceRecon's order: eyes, nose, mouth corners."""
        return np.stack([self.eye_left_corners, self.eye_right_corners, self.nose, self.mouth_left, self.mouth_right])


class LandmarkDetector:
    """MediaPipe face mesh in still-image mode (the model ships in the mediapipe wheel)."""

    def __init__(self):
        from THG.face_mesh import FaceMesh

        self._mesh = FaceMesh()

    def __call__(self, rgb: np.ndarray) -> Landmarks | None:
        pts = self._mesh(rgb)
        if pts is None:
            return None
        el, er = pts[list(MESH_EYE_LEFT)], pts[list(MESH_EYE_RIGHT)]
        return Landmarks(eye_left=el.mean(0), eye_right=er.mean(0), eye_left_corners=(el[0] + el[3]) / 2,
                         eye_right_corners=(er[0] + er[3]) / 2, nose=pts[MESH_NOSE_TIP],
                         mouth_left=pts[MESH_MOUTH[0]], mouth_right=pts[MESH_MOUTH[1]])

    def close(self):
        self._mesh.close()


def crop_boxes(lm: Landmarks, width: int, height: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The face box (used by ``crop`` and ``full``) and the wider box around it (``extcrop``), both
    (x1, y1, x2, y2) in pixels, from SadTalker's ``align_face``: a square oriented by the eyes and
    mouth, twice the larger of (2 x eye distance, 1.8 x eye-to-mouth distance), plus a 10 % border.

    Upstream first shrinks photos whose face square exceeds 2048 px; that only changes rounding, so
    it is skipped, and the boxes are clamped to the image (upstream clamps the bottom to the width)."""
    eye_avg = (lm.eye_left + lm.eye_right) * 0.5
    eye_to_eye = lm.eye_right - lm.eye_left
    eye_to_mouth = (lm.mouth_left + lm.mouth_right) * 0.5 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    border = max(int(np.rint(np.hypot(*x) * 2 * 0.1)), 3)
    wide = (max(int(np.floor(quad[:, 0].min())) - border, 0), max(int(np.floor(quad[:, 1].min())) - border, 0),
            min(int(np.ceil(quad[:, 0].max())) + border, width), min(int(np.ceil(quad[:, 1].max())) + border, height))
    q = (quad - wide[:2] + 0.5).flatten()
    cw, ch = wide[2] - wide[0], wide[3] - wide[1]
    lx, ly = int(max(min(q[0], q[2]), 0)), int(max(min(q[1], q[7]), 0))
    rx, ry = int(min(max(q[4], q[6]), cw)), int(min(max(q[3], q[5]), ch))
    face = (wide[0] + lx, wide[1] + ly, wide[0] + rx, wide[1] + ry)
    return face, wide


def align_for_recon(img: np.ndarray, five: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Deep3DFaceRecon's ``align_img``: scale and shift the image so that the five landmarks fit the
    3-D reference points, and cut 224x224 out of it.

    ``img`` is RGB uint8; ``five`` the (5, 2) landmarks in its pixels, or None to assume the reference
    position (upstream's fallback when no landmarks are found). Returns the crop (224, 224, 3) uint8 and
    ``(w0, h0, s, tx, ty)``, of which (s, tx, ty) are the extra inputs of the ``full``-mode mapping."""
    from PIL import Image

    h0, w0 = img.shape[:2]
    if five is None:
        five = (LM3D_5[:, :2] + 1) / 2 * [w0, h0]
    else:
        five = np.stack([five[:, 0], h0 - 1 - five[:, 1]], axis=1)  # y up, as the 3-D points
    t, s = _similarity(five, LM3D_5)
    s = 102.0 / s
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - 112 + float((t[0] - w0 / 2) * s))
    up = int(h / 2 - 112 + float((h0 / 2 - t[1]) * s))
    pil = Image.fromarray(img).resize((w, h), resample=Image.BICUBIC).crop((left, up, left + 224, up + 224))
    return np.asarray(pil), np.array([w0, h0, s, t[0], t[1]], dtype=np.float32)


def _similarity(xp: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares affine fit of 3-D points ``x`` (n, 3) to 2-D points ``xp`` (n, 2); returns the
    translation and the mean scale of its two rows (Deep3DFaceRecon's ``POS``)."""
    n = xp.shape[0]
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3], a[0::2, 3] = x, 1
    a[1::2, 4:7], a[1::2, 7] = x, 1
    k = np.linalg.lstsq(a, xp.reshape(-1), rcond=None)[0]
    s = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3], k[7]]), float(s)


def feather_mask(w: int, h: int, frac: float = 0.08) -> np.ndarray:
    """(h, w, 1) float32 weights: 1 inside, ramping to 0 over ``frac`` of the box at its edges.
    A fixed alpha blend in place of upstream's per-frame seamlessClone, which costs ~0.1 s a frame."""
    r = max(2, round(min(w, h) * frac))
    ramp_x = np.clip(np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / r, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / r, 0, 1)
    return (np.outer(ramp_y, ramp_x) ** 0.5)[..., None].astype(np.float32)


def paste(background: np.ndarray, face: np.ndarray, box: tuple[int, int, int, int], mask: np.ndarray) -> np.ndarray:
    """Blend ``face`` (any size, RGB uint8) into ``box`` of a copy of ``background``."""
    x1, y1, x2, y2 = box
    face = cv2.resize(face, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    out = background.copy()
    region = out[y1:y2, x1:x2].astype(np.float32)
    out[y1:y2, x1:x2] = np.clip(region + (face - region) * mask + 0.5, 0, 255).astype(np.uint8)
    return out
