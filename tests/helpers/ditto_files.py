"""Small stand-ins for the Ditto files that have no PyTorch manifest, made in the test.

* ``write_tiny_hubert``: an ONNX model with the interface of the published streaming HuBERT
  (``ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx``): input ``input_values`` float32 (1, 6480),
  output ``encoding_out`` float32 (20, 1024), i.e. 50 frames a second of 1024 features over the 6480
  samples. Inside it is a strided convolution (HuBERT's 400-sample receptive field, 320-sample hop),
  tanh and a projection, with fixed pseudo-random weights: features that follow the sound.
* ``write_ditto_config``: a ``v0.4_hubert_cfg_pytorch.pkl``-style pickle of plain containers and numpy
  arrays, laid out as upstream's ``parse_cfg`` reads it (``base_cfg``, ``audio2motion_cfg``,
  ``default_kwargs``).

``bench/`` imports this module too: these are test data, not part of the application.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

HUBERT_SAMPLES, HUBERT_FRAMES, HUBERT_DIM = 6480, 20, 1024


def write_tiny_hubert(path: Path, seed: int = 0, hidden: int = 16, loudness: float = 0.0) -> Path:
    """``loudness`` > 0: feature 0 of every row is that times the RMS of the row's 400 samples (a
    feature the see-through LMDM of ``ditto_seethrough`` reads)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv = (rng.standard_normal((hidden, 1, 400)) / 20.0).astype(np.float32)
    proj = (rng.standard_normal((hidden, HUBERT_DIM)) / np.sqrt(hidden)).astype(np.float32)
    inits = [numpy_helper.from_array(conv, "conv_w"), numpy_helper.from_array(proj, "proj_w"),
             numpy_helper.from_array(np.array([1, 1, HUBERT_SAMPLES], np.int64), "shape_in"),
             numpy_helper.from_array(np.array([HUBERT_FRAMES, HUBERT_DIM], np.int64), "shape_out")]
    nodes = [
        helper.make_node("Reshape", ["input_values", "shape_in"], ["wave"]),
        helper.make_node("Conv", ["wave", "conv_w"], ["frames"], strides=[320]),  # (1, hidden, 20)
        helper.make_node("Tanh", ["frames"], ["act"]),
        helper.make_node("Transpose", ["act"], ["act_t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["act_t", "proj_w"], ["feat"]),
    ]
    if loudness > 0:
        inits += [numpy_helper.from_array(np.full((1, 1, 400), 1 / 400, np.float32), "mean_w"),
                  numpy_helper.from_array(np.array(loudness, np.float32), "loud_scale"),
                  numpy_helper.from_array(np.array([1], np.int64), "one"),
                  numpy_helper.from_array(np.array([HUBERT_DIM], np.int64), "dim"),
                  numpy_helper.from_array(np.array([2], np.int64), "axis")]
        nodes += [
            helper.make_node("Mul", ["wave", "wave"], ["power"]),
            helper.make_node("Conv", ["power", "mean_w"], ["mean_power"], strides=[320]),  # (1, 1, 20)
            helper.make_node("Sqrt", ["mean_power"], ["rms"]),
            helper.make_node("Mul", ["rms", "loud_scale"], ["loud"]),
            helper.make_node("Transpose", ["loud"], ["loud_t"], perm=[0, 2, 1]),  # (1, 20, 1)
            helper.make_node("Slice", ["feat", "one", "dim", "axis"], ["rest"]),
            helper.make_node("Concat", ["loud_t", "rest"], ["feat_all"], axis=2),
        ]
        last = "feat_all"
    else:
        last = "feat"
    nodes.append(helper.make_node("Reshape", [last, "shape_out"], ["encoding_out"]))
    graph = helper.make_graph(
        nodes, "tiny_hubert_streaming",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, [1, HUBERT_SAMPLES])],
        [helper.make_tensor_value_info("encoding_out", TensorProto.FLOAT, [HUBERT_FRAMES, HUBERT_DIM])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def blink_template(frames: int = 8, depth: float = 0.06) -> np.ndarray:
    """(frames, 63) expression offsets of a blink, as ``delta_eye_arr`` in the published config:
    zero at both ends, the eye keypoints (LivePortrait's 11, 13, 15, 16, 18) pulled together in y
    at the middle."""
    curve = np.sin(np.linspace(0, np.pi, frames)) ** 2
    arr = np.zeros((frames, 21, 3), np.float32)
    for k, sign in ((11, 1), (13, -1), (15, 1), (16, -1), (18, 1)):
        arr[:, k, 1] = sign * depth * curve
    return arr.reshape(frames, 63)


def canonical_template(rng: np.random.Generator) -> dict:
    """A ``ch_info``-like canonical character: the motion extractor outputs of one face, its
    keypoints as ``sc`` and one eye-openness / eye-ball row."""
    x_s_info = {"pitch": rng.standard_normal((1, 66)).astype(np.float32),
                "yaw": rng.standard_normal((1, 66)).astype(np.float32),
                "roll": rng.standard_normal((1, 66)).astype(np.float32),
                "t": (0.05 * rng.standard_normal((1, 3))).astype(np.float32),
                "exp": (0.02 * rng.standard_normal((1, 63))).astype(np.float32),
                "scale": np.array([[1.4]], np.float32),
                "kp": (0.3 * rng.standard_normal((1, 63))).astype(np.float32)}
    return {"x_s_info_lst": [x_s_info], "sc": x_s_info["kp"].flatten(),
            "eye_open_lst": [np.array([[0.32, 0.31]], np.float32)],
            "eye_ball_lst": [(0.01 * rng.standard_normal((1, 6))).astype(np.float32)]}


def ditto_config(*, emo=4, online: bool = False, ch_info: dict | None = None, blink: np.ndarray | None = None,
                 clip: np.ndarray | None = None, extra: dict | None = None) -> dict:
    """The content of a published-style config pickle. The paths are relative to ``ditto_pytorch``."""
    def model(name):
        return {"model_path": f"models/{name}.pth", "device": "cuda"}

    base_cfg = {
        "insightface_det_cfg": {"model_path": "aux_models/det_10g.onnx", "device": "cuda"},
        "landmark106_cfg": {"model_path": "aux_models/2d106det.onnx", "device": "cuda"},
        "landmark203_cfg": {"model_path": "aux_models/landmark203.onnx", "device": "cuda"},
        "landmark478_cfg": {"blaze_face_model_path": "", "face_mesh_model_path": "", "device": "cuda",
                            "force_ori_type": True, "task_path": "aux_models/face_landmarker.task"},
        "appearance_extractor_cfg": model("appearance_extractor"),
        "motion_extractor_cfg": model("motion_extractor"),
        "stitch_network_cfg": model("stitch_network"),
        "warp_network_cfg": model("warp_network"),
        "decoder_cfg": model("decoder"),
        "hubert_cfg": {"model_path": "aux_models/hubert_streaming_fix_kv.onnx", "device": "cuda",
                       "force_ori_type": False},
    }
    audio2motion_cfg = {"model_path": "models/lmdm_v0.4_hubert.pth", "device": "cuda", "motion_feat_dim": 265,
                        "audio_feat_dim": 1103, "seq_frames": 80, "use_emo": True, "use_sc": True,
                        "use_eye_open": True, "use_eye_ball": True, "w2f_type": "hubert"}
    defaults = {"emo": emo, "online_mode": online, "overlap_v2": 70 if online else 10, "sampling_timesteps": 50,
                "smo_k_d": 3, "fix_kp_cond": 0, "crop_scale": 2.3, "crop_vx_ratio": 0, "crop_vy_ratio": -0.125,
                "crop_flag_do_rot": True, "relative_d": True, "flag_stitching": True, "delta_eye_open_n": -1,
                "fade_type": "", "fade_out_keys": ("exp",), "overall_ctrl_info": {}}
    if ch_info is not None:
        defaults["ch_info"] = ch_info
    if blink is not None:
        defaults["delta_eye_arr"] = blink
    if clip is not None:
        defaults["v_min_max_for_clip"] = clip
    defaults.update(extra or {})
    return {"base_cfg": base_cfg, "audio2motion_cfg": audio2motion_cfg, "default_kwargs": defaults}


def write_ditto_config(path: Path, config: dict | None = None, protocol: int = 4) -> Path:
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(config if config is not None else ditto_config(), f, protocol=protocol)
    return path


MODELS_DIR = "ditto_pytorch/models"
HUBERT_NAME = "ditto_pytorch/aux_models/hubert_streaming_fix_kv.onnx"
CONFIG_NAME = "ditto_cfg/v0.4_hubert_cfg_pytorch.pkl"


def run_config() -> dict:
    """The settings the tests run with: neutral emotion, a blink template, and clip ranges that keep the
    seeded model's large outputs to a head-sized motion (+-1.5 bin logits, +-0.05 of the crop for
    translation and expression)."""
    clip = np.full((2, 265), 1.5, np.float32)
    clip[:, 0] = 0.05  # scale - 1
    clip[:, 199:] = 0.05  # t and exp
    clip[0] *= -1
    return ditto_config(emo=4, blink=blink_template(8), clip=clip)


def write_ditto_tree(reference_dir: Path, root: Path, config: dict | None = None,
                     states: dict | None = None) -> Path:
    """A checkpoints root laid out as the catalog expects: ``root/ditto/`` holding the seeded networks
    (``ditto_pytorch/models``), the tiny HuBERT and a settings pickle, under the hub's paths."""
    from tests.helpers.seeded_checkpoints import write_ditto

    folder = Path(root) / "ditto"
    write_ditto(reference_dir, folder / MODELS_DIR, states=states)
    (folder / HUBERT_NAME).parent.mkdir(parents=True, exist_ok=True)
    write_tiny_hubert(folder / HUBERT_NAME)
    (folder / CONFIG_NAME).parent.mkdir(parents=True, exist_ok=True)
    write_ditto_config(folder / CONFIG_NAME, config if config is not None else run_config())
    return Path(root)
