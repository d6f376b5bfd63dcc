"""The published ``ditto_cfg/*.pkl`` settings, read without running pickled code.

The files are pickles of plain containers and numpy arrays: ``base_cfg`` (model paths),
``audio2motion_cfg`` (the LMDM's sizes and which conditions it sees) and ``default_kwargs`` (the run
settings, with data arrays: the emotion, the canonical template ``ch_info``, the per-dimension clip range
``v_min_max_for_clip`` and the blink template ``delta_eye_arr``). They are read with the allow-list
unpickler of ``app_modules.safe_pickle``, which rebuilds those types and refuses any other global, so a
doctored file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app_modules.errors import TalkerError
from app_modules.safe_pickle import SAFE
from THG.ditto.motion import emotion_rows


def safe_load(path: str | Path) -> Any:
    """A plain pickle through the checkpoints' allow-list unpickler (``app_modules.safe_pickle``)."""
    data = Path(path).read_bytes()
    try:
        return SAFE.load(io.BytesIO(data))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise TalkerError(f"cannot read the Ditto settings file {path}: {e}") from e


@dataclass(frozen=True)
class Template:
    """A canonical character (``ch_info``): its motion, keypoints and eye measures, one row per frame."""

    motion: dict[str, np.ndarray]  # the motion extractor's outputs for its first frame, (1, ...) each
    sc: np.ndarray  # (63,)
    eye_open: np.ndarray  # (k, 2)
    eye_ball: np.ndarray  # (k, 6)

    @property
    def scale(self) -> float:
        return float(np.asarray(self.motion["scale"]).reshape(-1)[0])


@dataclass(frozen=True)
class DittoConfig:
    """What Ditto's run needs from a settings file (upstream's defaults where the file is silent)."""

    emo: np.ndarray = field(default_factory=lambda: emotion_rows(4))  # (m, 8)
    template: Template | None = None
    clip: tuple[np.ndarray, np.ndarray] | None = None  # (265,) lower and upper bounds
    blink: np.ndarray | None = None  # (b, 63)
    blink_open: int | list[int] = 0  # delta_eye_open_n
    overlap: int = 10
    online: bool = False
    sampling_timesteps: int = 50
    smooth: int = 3
    fix_kp_cond: int = 0
    fix_kp_cond_dim: tuple[int, int] | None = None
    crop_scale: float = 2.3
    crop_vy: float = -0.125
    crop_rotate: bool = True
    use_d_keys: tuple[str, ...] | dict[str, float] | None = None
    relative: bool = True
    drive_eye: bool | None = None
    stitching: bool = True
    eye_first_only: bool = False
    ctrl: dict = field(default_factory=dict)
    conditions: tuple[bool, bool, bool, bool] = (True, True, True, True)  # emo, eye_open, eye_ball, sc
    seq_frames: int = 80


def _array(v, shape_tail: tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    if a.ndim < 1 or a.shape[a.ndim - len(shape_tail):] != shape_tail or not np.isfinite(a).all():
        raise TalkerError(f"Ditto settings: {what} should be finite numbers of shape (..., "
                          f"{', '.join(map(str, shape_tail))}), got {a.shape}")
    return a


def _template(ch: dict) -> Template:
    try:
        motion = {k: np.asarray(v, np.float32) for k, v in ch["x_s_info_lst"][0].items()}
        sc = np.asarray(ch["sc"], np.float32).reshape(-1)
        eye_open = np.concatenate([np.asarray(r, np.float32).reshape(-1, 2) for r in ch["eye_open_lst"]])
        eye_ball = np.concatenate([np.asarray(r, np.float32).reshape(-1, 6) for r in ch["eye_ball_lst"]])
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise TalkerError(f"Ditto settings: the template (ch_info) is incomplete: {e}") from e
    missing = {"pitch", "yaw", "roll", "t", "exp", "scale", "kp"} - set(motion)
    if missing or sc.shape != (63,):
        raise TalkerError(f"Ditto settings: the template (ch_info) lacks {sorted(missing) or 'sc (63,)'}")
    return Template(motion, sc, eye_open, eye_ball)


def parse_config(raw: Any) -> DittoConfig:
    """The run settings of a settings pickle's content."""
    if not isinstance(raw, dict) or not isinstance(raw.get("default_kwargs", {}), dict):
        raise TalkerError("Ditto settings: expected a dict with 'default_kwargs' (a ditto_cfg/*.pkl file)")
    kw = raw.get("default_kwargs", {})
    a2m = raw.get("audio2motion_cfg", {}) or {}
    out: dict[str, Any] = {}
    if "emo" in kw:
        try:
            out["emo"] = emotion_rows(kw["emo"])
        except ValueError as e:
            raise TalkerError(f"Ditto settings: {e}") from e
    if kw.get("ch_info") is not None:
        out["template"] = _template(kw["ch_info"])
    if kw.get("v_min_max_for_clip") is not None:
        clip = _array(kw["v_min_max_for_clip"], (265,), "v_min_max_for_clip")
        out["clip"] = (clip.reshape(-1, 265)[0], clip.reshape(-1, 265)[1])
    if kw.get("delta_eye_arr") is not None:
        out["blink"] = _array(kw["delta_eye_arr"], (63,), "delta_eye_arr").reshape(-1, 63)
    if "delta_eye_open_n" in kw:
        v = kw["delta_eye_open_n"]
        out["blink_open"] = [int(x) for x in v] if isinstance(v, (list, tuple)) else int(v)
    for key, name, kind in (("overlap_v2", "overlap", int), ("online_mode", "online", bool),
                            ("sampling_timesteps", "sampling_timesteps", int), ("smo_k_d", "smooth", int),
                            ("fix_kp_cond", "fix_kp_cond", int), ("crop_scale", "crop_scale", float),
                            ("crop_vy_ratio", "crop_vy", float), ("crop_flag_do_rot", "crop_rotate", bool),
                            ("relative_d", "relative", bool), ("flag_stitching", "stitching", bool),
                            ("eye_f0_mode", "eye_first_only", bool)):
        if kw.get(key) is not None:
            out[name] = kind(kw[key])
    if kw.get("fix_kp_cond_dim") is not None:
        a, b = kw["fix_kp_cond_dim"]
        out["fix_kp_cond_dim"] = (int(a), int(b))
    if kw.get("drive_eye") is not None:
        out["drive_eye"] = bool(kw["drive_eye"])
    keys = kw.get("use_d_keys")
    if keys is not None:
        out["use_d_keys"] = ({str(k): float(v) for k, v in keys.items()} if isinstance(keys, dict)
                             else tuple(str(k) for k in keys))
    if isinstance(kw.get("overall_ctrl_info"), dict):
        out["ctrl"] = dict(kw["overall_ctrl_info"])
    out["conditions"] = tuple(bool(a2m.get(k, True)) for k in ("use_emo", "use_eye_open", "use_eye_ball", "use_sc"))
    if "seq_frames" in a2m:
        out["seq_frames"] = int(a2m["seq_frames"])
    return DittoConfig(**out)


def load_config(path: str | Path) -> DittoConfig:
    return parse_config(safe_load(path))
