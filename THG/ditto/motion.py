"""LivePortrait motion as Ditto moves it: the 265-dim motion vector, keypoints from motion, the LMDM's
per-frame conditions, and the relative stitching of generated motion onto the photo.

A motion is a dict of per-frame arrays with a leading frame axis: ``scale`` (n, 1), ``pitch``/``yaw``/
``roll`` (n, 66) bin logits (or (n,) degrees once a pose offset has been applied), ``t`` (n, 3),
``exp`` (n, 63) and, for a source face only, ``kp`` (n, 63) canonical keypoints. The LMDM's vector is
``[scale - 1, pitch, yaw, roll, t, exp]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

MOTION_DIM, POSE_DIM, NUM_KP = 265, 202, 21  # POSE_DIM: scale, angles and t, smoothed over time
LAYOUT = (("scale", 1), ("pitch", 66), ("yaw", 66), ("roll", 66), ("t", 3), ("exp", 63))
EYE_KP = (11, 13, 15, 16, 18)  # LivePortrait's implicit keypoints that move with the eyelids
LIP_KP = (6, 12, 14, 17, 19, 20)  # ... and with the lips
GAZE = (0.26, 0.28)  # eye-ball shift per degree of yaw and of pitch (upstream's constants)
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")  # THG.ditto_thg too

Motion = dict[str, np.ndarray]


def to_vector(m: Motion) -> np.ndarray:
    """Motion -> (n, 265) LMDM vectors (``kp`` is not part of it)."""
    parts = []
    for k, dim in LAYOUT:
        v = np.asarray(m[k], np.float32).reshape(-1, dim)
        parts.append(v - 1 if k == "scale" else v)
    return np.concatenate(parts, axis=-1)


def to_motion(v: np.ndarray) -> Motion:
    """(n, 265) LMDM vectors -> motion."""
    v = np.asarray(v, np.float32).reshape(-1, MOTION_DIM)
    out, s = {}, 0
    for k, dim in LAYOUT:
        out[k] = v[:, s:s + dim] + (1 if k == "scale" else 0)
        s += dim
    return out


def degrees(angle: np.ndarray) -> np.ndarray:
    """(n, 66) bin logits -> (n,) degrees (softmax expectation over 3-degree bins from -97.5); degrees
    pass through."""
    angle = np.asarray(angle)
    if angle.ndim > 1 and angle.shape[1] == 66:
        return (softmax(angle, axis=1) * np.arange(66, dtype=np.float32)).sum(axis=1) * 3 - 97.5
    return angle.reshape(-1)


def rotation(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(n,) degrees -> (n, 3, 3), transposed for row vectors: ``kp @ R`` rotates."""
    x, y, z = (np.asarray(a, np.float32).reshape(-1, 1) / 180 * np.pi for a in (pitch, yaw, roll))
    one, zero = np.ones_like(x), np.zeros_like(x)
    rx = np.concatenate([one, zero, zero, zero, np.cos(x), -np.sin(x), zero, np.sin(x), np.cos(x)], 1)
    ry = np.concatenate([np.cos(y), zero, np.sin(y), zero, one, zero, -np.sin(y), zero, np.cos(y)], 1)
    rz = np.concatenate([np.cos(z), -np.sin(z), zero, np.sin(z), np.cos(z), zero, zero, zero, one], 1)
    n = x.shape[0]
    r = rz.reshape(n, 3, 3) @ ry.reshape(n, 3, 3) @ rx.reshape(n, 3, 3)
    return np.transpose(r, (0, 2, 1))


def keypoints(m: Motion) -> np.ndarray:
    """Motion with ``kp`` -> (n, 21, 3) implicit keypoints: ``scale * (kp R + exp) + (tx, ty, 0)``."""
    n = max(np.shape(v)[0] for v in m.values())
    rot = rotation(degrees(m["pitch"]), degrees(m["yaw"]), degrees(m["roll"]))
    kp = np.broadcast_to(np.asarray(m["kp"], np.float32).reshape(-1, NUM_KP, 3), (n, NUM_KP, 3))
    exp = np.broadcast_to(np.asarray(m["exp"], np.float32).reshape(-1, NUM_KP, 3), (n, NUM_KP, 3))
    out = kp @ np.broadcast_to(rot, (n, 3, 3)) + exp
    out = out * np.asarray(m["scale"], np.float32).reshape(-1, 1, 1)
    out[:, :, 0:2] += np.asarray(m["t"], np.float32).reshape(-1, 1, 3)[:, :, 0:2]
    return out


def mirror_index(i: np.ndarray, size: int) -> np.ndarray:
    """Back-and-forth looping over ``size`` rows (upstream's ``_mirror_index``)."""
    i = np.asarray(i)
    turn, res = i // size, i % size
    return np.where(turn % 2 == 0, res, size - res - 1)


def emotion_rows(emo) -> np.ndarray:
    """Upstream's emotion forms -> (m, 8) rows: an index 0-7, a list of indices (mixed), a list of such
    lists (one row each) or an (m, 8) array. A label is a softmax over 8 with 8 at the chosen ones."""
    def mix(idx) -> np.ndarray:
        logits = np.zeros(8, np.float32)
        logits[list(idx)] = 8
        return softmax(logits).astype(np.float32)

    if isinstance(emo, np.ndarray) and emo.ndim == 2 and emo.shape[1] == 8:
        return emo.astype(np.float32)
    if isinstance(emo, (int, np.integer)) and not isinstance(emo, bool) and 0 <= emo < 8:
        return mix([int(emo)])[None]
    if isinstance(emo, (list, tuple)) and 0 < len(emo) < 8 and all(
            isinstance(i, (int, np.integer)) and 0 <= i < 8 for i in emo):
        return mix(emo)[None]
    if isinstance(emo, list) and emo and all(isinstance(e, (list, tuple)) for e in emo):
        return np.stack([mix(e) for e in emo])
    raise ValueError(f"unsupported emotion {emo!r}: use 0-7 ({', '.join(EMOTIONS)}), a list of those, "
                     "or an (n, 8) array")


@dataclass
class Conditions:
    """What the LMDM sees besides the audio, frame by frame (upstream's ``ConditionHandler``)."""

    emo: np.ndarray  # (m, 8)
    eye_open: np.ndarray  # (k, 2) eye openness per frame of the source (or template)
    eye_ball: np.ndarray  # (k, 6) eye-ball offsets
    sc: np.ndarray  # (63,) canonical keypoints of the source (or template)
    use: tuple[bool, bool, bool, bool] = (True, True, True, True)  # emo, eye_open, eye_ball, sc
    eye_first_only: bool = False  # upstream's eye_f0_mode

    def __call__(self, audio: np.ndarray, start: int) -> np.ndarray:
        """(n, 1024) audio features of frames ``start..start+n`` -> (n, cond_dim); negative frame
        numbers (the silence before the first window) use the first row."""
        n = len(audio)
        idx = np.maximum(np.arange(start, start + n), 0)
        parts = [np.asarray(audio, np.float32)]
        if self.use[0]:
            parts.append(self.emo[idx % len(self.emo)])
        for on, rows in ((self.use[1], self.eye_open), (self.use[2], self.eye_ball)):
            if on:
                parts.append(rows[np.zeros(n, int) if self.eye_first_only else mirror_index(idx, len(rows))])
        if self.use[3]:
            parts.append(np.broadcast_to(self.sc, (n, len(self.sc))))
        return np.concatenate(parts, axis=-1).astype(np.float32)


def blink_schedule(n: int, blink_frames: int, open_frames, rng: np.random.Generator) -> np.ndarray:
    """(n,) row of the blink template for every frame (0: eyes open), upstream's ``_set_eye_blink_idx``:
    ``open_frames`` -1: never; 0: a blink every 60-100 frames at random (drawn from ``rng`` here, not
    Python's ``random``); a number: that many open frames between blinks; a list: those, in turn."""
    idx = np.zeros(n, np.int64)
    if isinstance(open_frames, (list, tuple)):
        gaps = list(open_frames)
    elif open_frames < 0:
        return idx
    else:
        gaps = [open_frames] if open_frames > 0 else []

    def gap(i: int) -> int:
        return gaps[i % len(gaps)] if gaps else int(rng.integers(60, 101))

    first = gaps[0] if gaps else gap(0)
    last = gaps[-1] if gaps else gap(0)
    stop = n - max(last, blink_frames)
    cur, k = first, 1
    while cur < stop:
        span = idx[cur:cur + blink_frames]
        idx[cur:cur + blink_frames] = np.arange(blink_frames)[:len(span)]
        cur += blink_frames + gap(k)
        k += 1
    return idx


@dataclass
class StitchSettings:
    """How generated motion is put onto the photo (upstream ``MotionStitch.setup`` arguments)."""

    use_d_keys: tuple[str, ...] | dict[str, float] = ("exp", "pitch", "yaw", "roll", "t")
    relative: bool = True  # motion relative to its first frame, added to the photo's
    drive_eye: bool = True  # the eyes follow the motion (a photo) rather than the source (a video)
    blink: np.ndarray | None = None  # (b, 63) expression offsets of one blink (``delta_eye_arr``)
    ctrl: dict = field(default_factory=dict)  # delta_/alpha_ pitch, yaw, roll (degrees), delta_exp
    stitching: bool = True
    template_scale: float | None = None  # the canonical template's scale (``ch_info``), if any


def scaled_keys(s: StitchSettings, source_scale: float):
    """With a canonical template, the motion learned at its scale is rescaled to the photo's."""
    if s.template_scale is None:
        return s.use_d_keys
    ratio = s.template_scale / source_scale
    if ratio == 1:
        return s.use_d_keys
    scaled = ("exp", "pitch", "yaw", "roll")
    if isinstance(s.use_d_keys, dict):
        return {k: v * (ratio if k in scaled else 1) for k, v in s.use_d_keys.items()}
    return {k: ratio if k in scaled else 1 for k in s.use_d_keys}


class Stitcher:
    """Generated motion -> (source keypoints, driving keypoints) for the warp, frame by frame."""

    def __init__(self, source: Motion, settings: StitchSettings, stitch_net=None):
        self.source = source
        self.s = settings
        self.keys = scaled_keys(settings, float(np.asarray(source["scale"]).reshape(-1)[0]))
        self.stitch_net = stitch_net  # callable (x_s, x_d) -> x_d, numpy (n, 21, 3)
        self.x_s = keypoints(source)  # (1, 21, 3)
        self.pose_s = (degrees(source["yaw"])[0], degrees(source["pitch"])[0])
        a1 = np.zeros((NUM_KP, 3), np.float32)
        a1[list(LIP_KP)] = 1
        a2 = np.zeros((NUM_KP, 3), np.float32)
        if settings.drive_eye:
            if settings.blink is None:
                a1[list(EYE_KP)] = 1
            else:
                a2[list(EYE_KP)] = 1
        a1, a2 = a1.reshape(1, -1), a2.reshape(1, -1)
        self.a1, self.a2, self.a3 = a1 * (1 - a2), (1 - a1) + a1 * a2, a2

    def __call__(self, motion: Motion, d0: Motion | None, blink_rows: np.ndarray | None = None):
        """``motion``: n frames; ``d0``: the reference frame of relative motion (None: absolute);
        ``blink_rows``: (n,) rows of the blink template. Returns x_s (1, 21, 3), x_d (n, 21, 3)."""
        src, keys = self.source, self.keys
        n = len(motion["exp"])
        if d0 is not None:
            weight = keys if isinstance(keys, dict) else {}
            d = {k: src[k] + (v - d0[k]) * weight.get(k, 1) for k, v in motion.items()}
        else:
            d = dict(motion)
        for k, v in src.items():
            if k not in d or k not in keys:
                d[k] = v
        if isinstance(keys, dict) and d0 is None:
            for k, alpha in keys.items():
                d[k] = d[k] * alpha
        eye = 0
        if self.s.drive_eye and self.s.blink is not None:
            eye = self.s.blink[np.zeros(n, int) if blink_rows is None else blink_rows]
        d["exp"] = d["exp"] * self.a1 + src["exp"] * self.a2 + eye * self.a3
        d = self._ctrl(d)
        if self.s.drive_eye:
            d["exp"] = self._gaze(d)
        x_d = keypoints({k: (np.broadcast_to(v, (n,) + np.shape(v)[1:]) if k == "kp" else v) for k, v in d.items()})
        if self.s.stitching and self.stitch_net is not None:
            x_d = self.stitch_net(np.broadcast_to(self.x_s, x_d.shape), x_d)
        return self.x_s, x_d.astype(np.float32)

    def _ctrl(self, d: Motion) -> Motion:
        c = self.s.ctrl
        for k in ("pitch", "yaw", "roll"):
            if f"delta_{k}" in c:
                d[k] = degrees(d[k]) + c[f"delta_{k}"]
            if f"alpha_{k}" in c:
                d[k] = d[k] * c[f"alpha_{k}"]
        if "delta_exp" in c:
            d["exp"] = d["exp"] + np.asarray(c["delta_exp"], np.float32).reshape(1, -1)
        return d

    def _gaze(self, d: Motion) -> np.ndarray:
        """Upstream's ``_fix_gaze``: the eye balls turn against the head so the gaze stays put."""
        dx = (degrees(d["yaw"]) - self.pose_s[0]) * GAZE[0]
        dy = (degrees(d["pitch"]) - self.pose_s[1]) * GAZE[1]
        exp = np.array(d["exp"], np.float32, copy=True).reshape(len(dx), -1)
        right = dx > 0
        exp[:, 33] += dx * np.where(right, 0.0007, 0.001)
        exp[:, 45] += dx * np.where(right, 0.001, 0.0007)
        exp[:, 34] += dy * -0.001
        exp[:, 46] += dy * -0.001
        return exp
